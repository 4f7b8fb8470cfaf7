import request from 'supertest';
import type { DigitSample } from '../scripts/mnist-data';
import { LoadedModel, loadModel } from '../services/model';
import { selectBackend } from '../services/backend';
import { MODEL_DIR, TestApp, startTestApp } from './helpers/app';
import { digitToRows, heldOutDigits } from './helpers/images';

// Requests and responses as the Open Inference Protocol (KServe v2) REST specification writes
// them: https://github.com/kserve/kserve/blob/master/docs/predict-api/v2/required_api.md

const LABELS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** Returns the first held-out sample of each of the given digits. */
function samples(...labels: number[]): DigitSample[] {
  return labels.map((label) => {
    const sample = heldOutDigits().find((candidate) => candidate.label === label);
    if (!sample) throw new Error(`the held-out split has no sample of digit ${label}`);
    return sample;
  });
}

/** Builds an input tensor of shape [N, 784], flat. */
function flatInput(digits: DigitSample[]) {
  return { name: 'pixels', shape: [digits.length, 784], datatype: 'FP32', data: digits.flatMap((digit) => Array.from(digit.pixels)) };
}

/** Builds an input tensor of shape [N, 28, 28, 1], nested as the shape. */
function nestedInput(digits: DigitSample[]) {
  return {
    name: 'pixels',
    shape: [digits.length, 28, 28, 1],
    datatype: 'FP32',
    data: digits.map((digit) => digitToRows(digit).map((row) => row.map((value) => [value]))),
  };
}

/** Asserts the `{"error": "..."}` body that the protocol requires of every error. */
function expectProtocolError(response: request.Response, status: number, message: RegExp): void {
  expect(response.status).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  expect(Object.keys(response.body)).toEqual(['error']);
  expect(response.body.error).toMatch(message);
}

describe('Open Inference Protocol', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  describe('health and metadata', () => {
    test('server metadata', async () => {
      const response = await request(testApp.app).get('/v2');

      expect(response.status).toBe(200);
      expect(response.body).toEqual({ name: 'inferline', version: '2', extensions: [] });
    });

    test('server live', async () => {
      const response = await request(testApp.app).get('/v2/health/live');

      expect(response.status).toBe(200);
      expect(response.body).toEqual({ live: true });
    });

    test('server ready', async () => {
      const response = await request(testApp.app).get('/v2/health/ready');

      expect(response.status).toBe(200);
      expect(response.body).toEqual({ ready: true });
    });

    test('server not ready during shutdown', async () => {
      testApp.services.lifecycle.shuttingDown = true;
      try {
        const server = await request(testApp.app).get('/v2/health/ready');
        const model = await request(testApp.app).get('/v2/models/digits/ready');

        expectProtocolError(server, 503, /shutting down/);
        expectProtocolError(model, 503, /shutting down/);
      } finally {
        testApp.services.lifecycle.shuttingDown = false;
      }
    });

    test('model ready', async () => {
      const response = await request(testApp.app).get('/v2/models/digits/ready');

      expect(response.status).toBe(200);
      expect(response.body).toEqual({ name: 'digits', ready: true });
    });

    test('model metadata', async () => {
      const response = await request(testApp.app).get('/v2/models/digits');

      expect(response.status).toBe(200);
      expect(response.body).toEqual({
        name: 'digits',
        versions: ['1.0.0'],
        platform: 'tensorflowjs_layersmodel',
        inputs: [{ name: 'pixels', datatype: 'FP32', shape: [-1, 28, 28, 1] }],
        outputs: [
          { name: 'probabilities', datatype: 'FP32', shape: [-1, 10] },
          { name: 'label', datatype: 'BYTES', shape: [-1] },
        ],
      });
    });

    test('model metadata of a version', async () => {
      const response = await request(testApp.app).get('/v2/models/digits/versions/1.0.0');

      expect(response.status).toBe(200);
      expect(response.body.versions).toEqual(['1.0.0']);
    });

    test.each([
      ['unknown model', '/v2/models/cats', /model "cats" not found/],
      ['unknown model ready', '/v2/models/cats/ready', /model "cats" not found/],
      ['unknown version', '/v2/models/digits/versions/9.9.9', /version "9.9.9" of model "digits" not found/],
      ['unknown version ready', '/v2/models/digits/versions/9.9.9/ready', /version "9.9.9"/],
      ['unknown path', '/v2/repository/index', /no route matches GET \/v2\/repository\/index/],
    ])('%s is 404', async (_case, path, message) => {
      const response = await request(testApp.app).get(path);

      expectProtocolError(response, 404, message);
    });

    test('wrong method is 405 with Allow', async () => {
      const response = await request(testApp.app).get('/v2/models/digits/infer');

      expectProtocolError(response, 405, /GET is not allowed/);
      expect(response.headers.allow).toBe('POST, OPTIONS');
    });
  });

  describe('inference', () => {
    test('flat tensor of ten digits', async () => {
      const digits = samples(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);

      const response = await request(testApp.app).post('/v2/models/digits/infer').send({ id: '42', inputs: [flatInput(digits)] });

      expect(response.status).toBe(200);
      expect(response.body.model_name).toBe('digits');
      expect(response.body.model_version).toBe('1.0.0');
      expect(response.body.id).toBe('42');
      const [probabilities, label] = response.body.outputs;
      expect(probabilities.name).toBe('probabilities');
      expect(probabilities.datatype).toBe('FP32');
      expect(probabilities.shape).toEqual([10, 10]);
      expect(probabilities.data).toHaveLength(100);
      for (let row = 0; row < 10; row++) {
        const sum = probabilities.data.slice(row * 10, row * 10 + 10).reduce((total: number, value: number) => total + value, 0);
        expect(sum).toBeCloseTo(1, 3);
      }
      expect(label).toEqual({ name: 'label', shape: [10], datatype: 'BYTES', data: expect.any(Array) });
      // The model is about 97% accurate on raw held-out pixels, so one miss in ten is allowed.
      const correct = (label.data as string[]).filter((value, index) => value === LABELS[index]).length;
      expect(correct).toBeGreaterThanOrEqual(9);
    });

    test('nested tensor equals flat tensor', async () => {
      const digits = samples(3, 7);

      const flat = await request(testApp.app).post('/v2/models/digits/infer').send({ inputs: [flatInput(digits)] });
      const nested = await request(testApp.app).post('/v2/models/digits/infer').send({ inputs: [nestedInput(digits)] });

      expect(nested.status).toBe(200);
      expect(nested.body.outputs).toEqual(flat.body.outputs);
      expect(nested.body.id).toBeUndefined();
    });

    test('same probabilities as /predict', async () => {
      const digits = samples(2, 5, 8);

      const protocol = await request(testApp.app).post('/v2/models/digits/infer').send({ inputs: [flatInput(digits)] });
      const predict = await request(testApp.app)
        .post('/predict')
        .send({ instances: digits.map((digit) => ({ pixels: digitToRows(digit) })) });

      expect(protocol.status).toBe(200);
      expect(predict.status).toBe(200);
      const expected = predict.body.predictions.flatMap((prediction: { probabilities: number[] }) => prediction.probabilities);
      protocol.body.outputs[0].data.forEach((value: number, index: number) => expect(value).toBeCloseTo(expected[index], 5));
      expect(protocol.body.outputs[1].data).toEqual(predict.body.predictions.map((prediction: { label: string }) => prediction.label));
    });

    test('requested output only', async () => {
      const response = await request(testApp.app)
        .post('/v2/models/digits/infer')
        .send({ inputs: [flatInput(samples(1))], outputs: [{ name: 'label', parameters: { binary_data: false } }] });

      expect(response.status).toBe(200);
      expect(response.body.outputs).toHaveLength(1);
      expect(response.body.outputs[0].name).toBe('label');
    });

    test('versioned path and body names', async () => {
      const body = { id: 'req-1', model_name: 'digits', model_version: '1.0.0', parameters: { priority: 1 }, inputs: [flatInput(samples(4))] };

      const response = await request(testApp.app).post('/v2/models/digits/versions/1.0.0/infer').send(body);

      expect(response.status).toBe(200);
      expect(response.body.id).toBe('req-1');
    });

    test('body without Content-Type', async () => {
      // Triton's and KServe's Python clients send the JSON body without a Content-Type.
      const response = await request(testApp.app)
        .post('/v2/models/digits/infer')
        .serialize((body: unknown) => JSON.stringify(body))
        .unset('Content-Type')
        .send({ inputs: [flatInput(samples(6))] });

      expect(response.status).toBe(200);
      expect(response.body.outputs[0].shape).toEqual([1, 10]);
    });
  });

  describe('invalid requests', () => {
    const infer = (body: unknown) => request(testApp.app).post('/v2/models/digits/infer').send(body as object);
    const digit = samples(0);
    const [input] = [flatInput(digit)];

    test.each([
      ['no inputs', { inputs: [] }, /inputs: send one input tensor/],
      ['two inputs', { inputs: [input, input] }, /one input tensor, "pixels"; got 2/],
      ['unknown input', { inputs: [{ ...input, name: 'image' }] }, /unknown input "image"/],
      ['FP64 data', { inputs: [{ ...input, datatype: 'FP64' }] }, /FP64 is not supported; send FP32/],
      ['wrong shape', { inputs: [{ ...input, shape: [1, 28, 28] }] }, /expected \[N, 28, 28, 1\] or \[N, 784\], got \[1,28,28\]/],
      ['empty batch', { inputs: [{ ...input, shape: [0, 784], data: [] }] }, /batch size N must be at least 1/],
      ['too few values', { inputs: [{ ...input, data: input.data.slice(1) }] }, /inputs\[0\].data: expected 784 values flat/],
      ['value over 1', { inputs: [{ ...input, data: [1.5, ...input.data.slice(1)] }] }, /inputs\[0\].data\[0\]: expected a number in 0..1, got 1.5/],
      ['string value', { inputs: [{ ...input, data: [...input.data.slice(0, 783), 'x'] }] }, /inputs\[0\].data\[783\]: expected a number in 0..1, got "x"/],
      ['unknown output', { inputs: [input], outputs: [{ name: 'logits' }] }, /unknown output "logits"/],
      ['other model name', { model_name: 'cats', inputs: [input] }, /model_name: "cats" differs/],
      ['unknown field', { inputs: [input], priority: 1 }, /priority: unknown property/],
      ['missing data', { inputs: [{ name: 'pixels', shape: [1, 784], datatype: 'FP32' }] }, /inputs\[0\].data/],
    ])('%s is 400', async (_case, body, message) => {
      const response = await infer(body);

      expectProtocolError(response, 400, message);
    });

    test('nested value out of range names its place', async () => {
      const nested = nestedInput(samples(0, 1));
      (nested.data[1] as number[][][])[27][3][0] = -0.5;

      const response = await infer({ inputs: [nested] });

      expectProtocolError(response, 400, /inputs\[0\].data\[1\]\[27\]\[3\]\[0\]: expected a number in 0..1, got -0.5/);
    });

    test('malformed JSON is 400', async () => {
      const response = await request(testApp.app).post('/v2/models/digits/infer').set('Content-Type', 'application/json').send('{"inputs": [');

      expectProtocolError(response, 400, /not valid JSON/);
    });

    test('binary tensor extension is 415', async () => {
      const response = await request(testApp.app)
        .post('/v2/models/digits/infer')
        .set('Content-Type', 'application/octet-stream')
        .set('Inference-Header-Content-Length', '60')
        .send(Buffer.alloc(100));

      expectProtocolError(response, 415, /binary tensor data extension is not supported/);
    });

    test('binary input parameter is 415', async () => {
      const response = await infer({ inputs: [{ ...input, parameters: { binary_data_size: 3136 } }] });

      expectProtocolError(response, 415, /binary tensor data is not supported/);
    });

    test('text body is 415', async () => {
      const response = await request(testApp.app).post('/v2/models/digits/infer').set('Content-Type', 'text/plain').send('{}');

      expectProtocolError(response, 415, /application\/json, not text\/plain/);
    });

    test('unknown model is 404', async () => {
      const response = await request(testApp.app).post('/v2/models/cats/infer').send({ inputs: [input] });

      expectProtocolError(response, 404, /model "cats" not found/);
    });
  });
});

describe('Open Inference Protocol limits', () => {
  test('more images than MAX_ITEMS is 413', async () => {
    const limited = await startTestApp({ MAX_ITEMS: '2' });
    try {
      const response = await request(limited.app).post('/v2/models/digits/infer').send({ inputs: [flatInput(samples(0, 1, 2))] });

      expectProtocolError(response, 413, /3 images is more than MAX_ITEMS \(2\)/);
    } finally {
      await limited.close();
    }
  });

  test('body over MAX_BODY_BYTES is 413', async () => {
    const limited = await startTestApp({ MAX_BODY_BYTES: '1000' });
    try {
      const response = await request(limited.app)
        .post('/v2/models/digits/infer')
        .serialize((body: unknown) => JSON.stringify(body))
        .unset('Content-Type')
        .send({ inputs: [flatInput(samples(0))] });

      expectProtocolError(response, 413, /MAX_BODY_BYTES/);
    } finally {
      await limited.close();
    }
  });

  test('shares model calls with /predict', async () => {
    const batched = await startTestApp({ MAX_BATCH_SIZE: '5', MAX_BATCH_DELAY_MS: '1000' });
    try {
      const digits = samples(0, 1, 2, 3, 4);

      const [protocol, predict] = await Promise.all([
        request(batched.app).post('/v2/models/digits/infer').send({ inputs: [flatInput(digits.slice(0, 3))] }),
        request(batched.app).post('/predict').send({ instances: digits.slice(3).map((digit) => ({ pixels: digitToRows(digit) })) }),
      ]);

      expect(protocol.status).toBe(200);
      expect(predict.status).toBe(200);
      expect(batched.services.batcher.stats.modelCalls).toBe(1);
      expect(batched.services.batcher.stats.batchSizeCounts.get(5)).toBe(1);
    } finally {
      await batched.close();
    }
  });

  test('full queue is 503 with Retry-After', async () => {
    // One input per model call keeps a large request waiting over many event-loop turns.
    const small = await startTestApp({ MAX_BATCH_SIZE: '1', MAX_QUEUED_INPUTS: '8' });
    try {
      const { batcher } = small.services;
      const filling = Promise.resolve(request(small.app).post('/v2/models/digits/infer').send({ inputs: [flatInput(Array(300).fill(samples(0)[0]))] }));
      for (let turn = 0; batcher.waitingInputs <= 8; turn++) {
        if (turn > 100_000) throw new Error('the filling request never reached the queue');
        await new Promise((resolve) => setImmediate(resolve));
      }

      const rejected = await request(small.app).post('/v2/models/digits/infer').send({ inputs: [flatInput(samples(1))] });
      const filled = await filling;

      expectProtocolError(rejected, 503, /prediction queue is full .*MAX_QUEUED_INPUTS is 8/);
      expect(rejected.headers['retry-after']).toMatch(/^[1-9]\d*$/);
      expect(filled.status).toBe(200);
      expect(filled.body.outputs[1].data).toHaveLength(300);
    } finally {
      await small.close();
    }
  });

  test('model failure is 500 without details', async () => {
    await selectBackend('wasm');
    const real = await loadModel(MODEL_DIR, 32);
    // The metadata promises 14x14 inputs, so the request passes the checks and the network throws.
    const broken = new LoadedModel((real as unknown as { network: ConstructorParameters<typeof LoadedModel>[0] }).network, { ...real.metadata, inputShape: [null, 14, 14, 1] }, 32);
    const brokenApp = await startTestApp({}, broken);
    try {
      const response = await request(brokenApp.app)
        .post('/v2/models/digits/infer')
        .set('X-Request-Id', 'broken-protocol')
        .send({ inputs: [{ name: 'pixels', shape: [1, 196], datatype: 'FP32', data: Array(196).fill(0.5) }] });

      expectProtocolError(response, 500, /^Internal Server Error; quote request id broken-protocol when reporting it$/);
    } finally {
      await brokenApp.close();
    }
  });
});
