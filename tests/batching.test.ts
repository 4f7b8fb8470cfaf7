import * as tf from '@tensorflow/tfjs';
import request from 'supertest';
import { BatcherOptions, PredictionBatcher } from '../services/batcher';
import type { LoadedModel, Prediction } from '../services/model';
import { TestApp, expectProblem, getModel, signUp, startTestApp, waitForAccessLine, waitForTask } from './helpers/app';
import { digitToRows, fixture, heldOutDigits } from './helpers/images';

jest.setTimeout(60_000);

const DEFAULTS: BatcherOptions = { maxBatchSize: 32, maxDelayMs: 0, maxQueuedInputs: 4096 };

let model: LoadedModel;
let tensorsBefore: number;
/** Held-out digits as model inputs, with the model's prediction for each input on its own. */
let inputs: Float32Array[];
let references: Prediction[];

beforeAll(async () => {
  model = await getModel();
  tensorsBefore = tf.memory().numTensors;
  inputs = heldOutDigits()
    .slice(0, 300)
    .map((sample) => sample.pixels);
  references = [];
  for (const input of inputs) references.push(...(await model.predict([input])));
});

function newBatcher(options: Partial<BatcherOptions> = {}): PredictionBatcher {
  return new PredictionBatcher(model, { ...DEFAULTS, ...options });
}

/** Resolves after the callbacks already queued with setImmediate have run. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function largestDifference(actual: number[], expected: number[]): number {
  return Math.max(...actual.map((value, i) => Math.abs(value - expected[i])));
}

/** Asserts that predictions match the single-input predictions of inputs `first`, `first + 1`, and so on. */
function expectReferences(predictions: Prediction[], first: number, count: number): void {
  expect(predictions).toHaveLength(count);
  predictions.forEach((prediction, i) => {
    const reference = references[first + i];
    expect(prediction.label).toBe(reference.label);
    expect(prediction.probabilities).toHaveLength(reference.probabilities.length);
    expect(largestDifference(prediction.probabilities, reference.probabilities)).toBeLessThanOrEqual(1e-5);
  });
}

function pixelInstances(first: number, count: number): { pixels: number[][] }[] {
  return heldOutDigits()
    .slice(first, first + count)
    .map((sample) => ({ pixels: digitToRows(sample) }));
}

describe('PredictionBatcher', () => {
  test('concurrent callers get their own rows', async () => {
    const batcher = newBatcher();
    const sizes = [1, 2, 3, 4, 1, 2, 3, 4];
    const firsts = sizes.map((_, caller) => sizes.slice(0, caller).reduce((total, size) => total + size, 0));

    const results = await Promise.all(sizes.map((size, caller) => batcher.predict(inputs.slice(firsts[caller], firsts[caller] + size))));

    results.forEach((predictions, caller) => expectReferences(predictions, firsts[caller], sizes[caller]));
    expect(batcher.stats.modelCalls).toBe(1);
    expect(batcher.stats.batchSizeCounts.get(20)).toBe(1);
  });

  test('batch never exceeds MAX_BATCH_SIZE', async () => {
    const batcher = newBatcher({ maxBatchSize: 5 });
    const sizes = [3, 4, 7, 1];
    const firsts = [0, 3, 7, 14];

    const results = await Promise.all(sizes.map((size, caller) => batcher.predict(inputs.slice(firsts[caller], firsts[caller] + size))));

    results.forEach((predictions, caller) => expectReferences(predictions, firsts[caller], sizes[caller]));
    expect(Math.max(...batcher.stats.batchSizeCounts.keys())).toBe(5);
    expect(batcher.stats.modelCalls).toBe(3);
    expect(batcher.stats.inputsPredicted).toBe(15);
  });

  test('lone input runs on the next turn', async () => {
    const batcher = newBatcher({ maxDelayMs: 0 });

    const pending = batcher.predict([inputs[0]]);
    const callsBeforeTurn = batcher.stats.modelCalls;
    await nextTurn();
    const callsAfterTurn = batcher.stats.modelCalls;

    expect(callsBeforeTurn).toBe(0);
    expect(callsAfterTurn).toBe(1);
    expectReferences(await pending, 0, 1);
  });

  test('MAX_BATCH_DELAY_MS delays a lone input', async () => {
    const batcher = newBatcher({ maxDelayMs: 100 });

    const pending = batcher.predict([inputs[0]]);
    await nextTurn();
    const callsAfterTurn = batcher.stats.modelCalls;
    const predictions = await pending;

    expect(callsAfterTurn).toBe(0);
    expect(batcher.stats.modelCalls).toBe(1);
    expectReferences(predictions, 0, 1);
  });

  test('full batch skips MAX_BATCH_DELAY_MS', async () => {
    const batcher = newBatcher({ maxBatchSize: 4, maxDelayMs: 1000 });

    const first = batcher.predict(inputs.slice(0, 2));
    const second = batcher.predict(inputs.slice(2, 4));
    await nextTurn();
    const callsAfterTurn = batcher.stats.modelCalls;

    expect(callsAfterTurn).toBe(1);
    expectReferences(await first, 0, 2);
    expectReferences(await second, 2, 2);
  });

  test('failing caller does not fail the others', async () => {
    const batcher = newBatcher();
    const tooShort = new Float32Array(100);

    const [before, broken, after] = await Promise.allSettled([
      batcher.predict(inputs.slice(0, 2)),
      batcher.predict([inputs[2], tooShort]),
      batcher.predict(inputs.slice(3, 4)),
    ]);

    expect(before.status).toBe('fulfilled');
    expect(after.status).toBe('fulfilled');
    expect(broken.status).toBe('rejected');
    if (before.status === 'fulfilled') expectReferences(before.value, 0, 2);
    if (after.status === 'fulfilled') expectReferences(after.value, 3, 1);
    if (broken.status === 'rejected') expect(String(broken.reason)).toMatch(/input 1 of the batch has 100 values; the model takes 784/);
    // One merged call, then one call per caller.
    expect(batcher.stats.modelCalls).toBe(4);
    expect(batcher.stats.failedModelCalls).toBe(2);
  });

  test('split request fails as a whole', async () => {
    const batcher = newBatcher({ maxBatchSize: 5 });
    const split = [...inputs.slice(0, 6), new Float32Array(3)];

    const [broken, other] = await Promise.allSettled([batcher.predict(split), batcher.predict(inputs.slice(10, 11))]);
    const later = await batcher.predict(inputs.slice(20, 21));

    expect(broken.status).toBe('rejected');
    expect(other.status).toBe('fulfilled');
    if (other.status === 'fulfilled') expectReferences(other.value, 10, 1);
    expectReferences(later, 20, 1);
    expect(batcher.waitingInputs).toBe(0);
  });

  test('admission rejects over MAX_QUEUED_INPUTS', async () => {
    const batcher = newBatcher({ maxQueuedInputs: 4 });
    const queued = batcher.predict(inputs.slice(0, 3));

    const rejected = batcher.admitAndPredict(2, async () => inputs.slice(3, 5));
    const admitted = batcher.admitAndPredict(1, async () => inputs.slice(5, 6));

    await expect(rejected).rejects.toMatchObject({ status: 503, headers: { 'Retry-After': expect.stringMatching(/^[1-9]\d*$/) } });
    expectReferences(await admitted, 5, 1);
    expectReferences(await queued, 0, 3);
    expect(batcher.stats.rejectedRequests).toBe(1);
  });

  test('request over the limit runs when idle', async () => {
    const batcher = newBatcher({ maxQueuedInputs: 4 });

    const predictions = await batcher.admitAndPredict(6, async () => inputs.slice(0, 6));

    expectReferences(predictions, 0, 6);
    expect(batcher.stats.rejectedRequests).toBe(0);
  });
});

describe('batching through HTTP', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('concurrent requests get their own rows', async () => {
    const sizes = [1, 3, 2, 1, 2, 3, 1, 1, 2, 3, 1, 2];
    const firsts = sizes.map((_, caller) => sizes.slice(0, caller).reduce((total, size) => total + size, 0));

    const responses = await Promise.all(
      sizes.map((size, caller) => request(testApp.app).post('/predict').send({ instances: pixelInstances(firsts[caller], size) })),
    );

    responses.forEach((response, caller) => {
      expect(response.status).toBe(200);
      expectReferences(response.body.predictions, firsts[caller], sizes[caller]);
    });
  });

  test('request of 100 instances is split', async () => {
    const { stats } = testApp.services.batcher;
    const callsBefore = stats.modelCalls;
    const fullBefore = stats.batchSizeCounts.get(32) ?? 0;

    const response = await request(testApp.app).post('/predict').send({ instances: pixelInstances(0, 100) });

    expect(response.status).toBe(200);
    expectReferences(response.body.predictions, 0, 100);
    expect(stats.modelCalls - callsBefore).toBe(4);
    expect((stats.batchSizeCounts.get(32) ?? 0) - fullBefore).toBe(3);
    expect(Math.max(...stats.batchSizeCounts.keys())).toBeLessThanOrEqual(32);
  });
});

describe('batching with MAX_BATCH_DELAY_MS', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    // A full batch starts at once, so the long delay only delays a batch whose requests arrive late.
    testApp = await startTestApp({ MAX_BATCH_SIZE: '8', MAX_BATCH_DELAY_MS: '1000' });
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('burst merges into fewer model calls', async () => {
    const requests = 16;

    const responses = await Promise.all(
      Array.from({ length: requests }, (_, caller) => request(testApp.app).post('/predict').send({ instances: pixelInstances(caller, 1) })),
    );

    responses.forEach((response, caller) => {
      expect(response.status).toBe(200);
      expectReferences(response.body.predictions, caller, 1);
    });
    expect(testApp.services.batcher.stats.modelCalls).toBeLessThan(requests);
    expect(Math.max(...testApp.services.batcher.stats.batchSizeCounts.keys())).toBeLessThanOrEqual(8);
  });

  test('predict, order and task share a call', async () => {
    const smallBatchApp = await startTestApp({ MAX_BATCH_SIZE: '3', MAX_BATCH_DELAY_MS: '1000' });
    try {
      const { stats } = smallBatchApp.services.batcher;
      const user = await signUp(smallBatchApp.app, 'sharer');
      const image = fixture('digit-3-canvas-transparent.png').toString('base64');

      const [predicted, ordered, queued] = await Promise.all([
        request(smallBatchApp.app).post('/predict').send({ instances: pixelInstances(0, 1) }),
        request(smallBatchApp.app).post('/orders').set('Authorization', user.auth).send({ items: [{ image }] }),
        request(smallBatchApp.app).post('/predict').set('Prefer', 'respond-async').send({ instances: pixelInstances(1, 1) }),
      ]);
      const task = await waitForTask(smallBatchApp.app, queued.body.id);

      expect(predicted.status).toBe(200);
      expect(ordered.status).toBe(201);
      expect(queued.status).toBe(202);
      expect(task.status).toBe('succeeded');
      expect(stats.modelCalls).toBe(1);
      expect(stats.batchSizeCounts.get(3)).toBe(1);
    } finally {
      await smallBatchApp.close();
    }
  });
});

describe('backpressure', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    // One input per model call keeps a large request waiting over many event-loop turns.
    testApp = await startTestApp({ MAX_BATCH_SIZE: '1', MAX_QUEUED_INPUTS: '8' });
  });

  afterAll(async () => {
    await testApp.close();
  });

  /**
   * Sends a request of 300 instances, which is admitted because nothing waits, and returns once its
   * inputs wait in the queue. `response` resolves with that request's response.
   */
  async function fillQueue(): Promise<{ response: Promise<request.Response> }> {
    const { batcher } = testApp.services;
    const response = Promise.resolve(request(testApp.app).post('/predict').send({ instances: pixelInstances(0, 300) }));
    for (let turn = 0; batcher.waitingInputs <= 8; turn++) {
      if (turn > 100_000) throw new Error('the filling request never reached the queue');
      await nextTurn();
    }
    return { response };
  }

  test('full queue rejects with 503 and Retry-After', async () => {
    const filling = await fillQueue();

    const responses = await Promise.all(
      Array.from({ length: 5 }, (_, i) => request(testApp.app).post('/predict').set('X-Request-Id', `queue-full-${i}`).send({ instances: pixelInstances(i, 1) })),
    );
    const filled = await filling.response;
    const accessLines = await Promise.all(responses.map((_, i) => waitForAccessLine(testApp, `queue-full-${i}`)));

    for (const response of responses) {
      expectProblem(response, 503);
      expect(response.headers['retry-after']).toMatch(/^[1-9]\d*$/);
      expect(response.body.detail).toContain('MAX_QUEUED_INPUTS');
    }
    // Backpressure is expected under load, so it stays out of `--level error`.
    expect(accessLines.map((line) => [line.status, line.level])).toEqual(responses.map(() => [503, 'warn']));
    expect(filled.status).toBe(200);
    expectReferences(filled.body.predictions, 0, 300);
    expect(testApp.services.batcher.stats.rejectedRequests).toBe(5);
  });

  test('full queue rejects a synchronous order', async () => {
    const user = await signUp(testApp.app, 'blocked');
    const image = fixture('digit-3-canvas-transparent.png').toString('base64');
    const filling = await fillQueue();

    const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).send({ items: [{ image }] });
    await filling.response;
    const orders = await request(testApp.app).get('/orders').set('Authorization', user.auth);

    expectProblem(response, 503);
    expect(response.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expect(orders.body.total).toBe(0);
  });

  test('full queue still accepts a background task', async () => {
    const filling = await fillQueue();

    const response = await request(testApp.app).post('/predict').set('Prefer', 'respond-async').send({ instances: pixelInstances(5, 2) });
    await filling.response;
    const task = await waitForTask(testApp.app, response.body.id);

    expect(response.status).toBe(202);
    expect(task.status).toBe('succeeded');
    expectReferences(task.result.predictions, 5, 2);
  });

  test('drained queue accepts requests again', async () => {
    const filling = await fillQueue();
    await filling.response;

    const response = await request(testApp.app).post('/predict').send({ instances: pixelInstances(7, 1) });

    expect(response.status).toBe(200);
    expectReferences(response.body.predictions, 7, 1);
  });
});

// Jest runs tests in the order they are declared, so this check runs after every test above.
test('batching leaves no tensor behind', () => {
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});
