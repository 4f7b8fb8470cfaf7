import sharp from 'sharp';
import request from 'supertest';
import type { DigitSample } from '../scripts/mnist-data';
import { TestApp, expectProblem, startTestApp, waitForTask } from './helpers/app';
import { digitToPng, digitToRows, fixture, heldOutDigits } from './helpers/images';

const LABELS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** Returns the first held-out MNIST sample of a digit. */
function heldOut(label: number): DigitSample {
  const sample = heldOutDigits().find((candidate) => candidate.label === label);
  if (!sample) throw new Error(`the held-out split has no sample of digit ${label}`);
  return sample;
}

/** Returns a copy of the rows with cell [3][4] replaced. */
function withCell(rows: unknown[][], value: unknown): unknown[][] {
  const copy = rows.map((row) => [...row]);
  copy[3][4] = value;
  return copy;
}

function imageInstance(bytes: Buffer): { image: string } {
  return { image: bytes.toString('base64') };
}

/** Asserts that an error body is plain JSON: no HTML page and no stack frame. */
function expectNoLeak(response: request.Response): void {
  expect(response.text).not.toContain('<html');
  expect(response.text).not.toContain('    at ');
}

function expectPrediction(prediction: { label: string; confidence: number; probabilities: number[] }, label: string): void {
  const sum = prediction.probabilities.reduce((total, value) => total + value, 0);

  expect(prediction.label).toBe(label);
  expect(prediction.probabilities).toHaveLength(10);
  expect(prediction.probabilities.every((value) => typeof value === 'number' && value >= 0 && value <= 1)).toBe(true);
  expect(sum).toBeCloseTo(1, 3);
  expect(prediction.confidence).toBe(Math.max(...prediction.probabilities));
}

describe('POST /predict', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  describe('classification', () => {
    test.each([
      ['digit-3-canvas-transparent.png', '3'],
      ['digit-5-exif-orientation-6.jpg', '5'],
      ['digit-2-16bit-grey.png', '2'],
      ['digit-8-light-on-dark.jpg', '8'],
    ])('fixture %s is %s', async (name, label) => {
      const body = { instances: [imageInstance(fixture(name))] };

      const response = await request(testApp.app).post('/predict').send(body);

      expect(response.status).toBe(200);
      expect(response.body.predictions).toHaveLength(1);
      expectPrediction(response.body.predictions[0], label);
      expect(response.body.model).toEqual({ name: testApp.services.model.metadata.name, version: testApp.services.model.metadata.version });
    });

    test('pixel instances of held-out digits', async () => {
      const instances = LABELS.map((_, label) => ({ pixels: digitToRows(heldOut(label)) }));

      const response = await request(testApp.app).post('/predict').send({ instances });

      // Raw pixels skip the pipeline the model was trained behind, and the model is about 97%
      // accurate, so one miss in ten is allowed.
      expect(response.status).toBe(200);
      const labels: string[] = response.body.predictions.map((prediction: { label: string }) => prediction.label);
      expect(labels).toHaveLength(LABELS.length);
      expect(labels.filter((label, i) => label === LABELS[i]).length).toBeGreaterThanOrEqual(9);
      for (const prediction of response.body.predictions) expectPrediction(prediction, prediction.label);
    });

    test('mixed instances keep their order', async () => {
      const instances = [
        imageInstance(fixture('digit-3-canvas-transparent.png')),
        { pixels: digitToRows(heldOut(7)) },
        imageInstance(await digitToPng(heldOut(1))),
        { pixels: digitToRows(heldOut(0)) },
      ];

      const response = await request(testApp.app).post('/predict').send({ instances });

      expect(response.status).toBe(200);
      expect(response.body.predictions.map((prediction: { label: string }) => prediction.label)).toEqual(['3', '7', '1', '0']);
    });

    test('data URL image is accepted', async () => {
      const image = `data:image/png;base64,${fixture('digit-3-canvas-transparent.png').toString('base64')}`;

      const response = await request(testApp.app).post('/predict').send({ instances: [{ image }] });

      expect(response.status).toBe(200);
      expect(response.body.predictions[0].label).toBe('3');
    });

    test('multipart files in order', async () => {
      const call = request(testApp.app)
        .post('/predict')
        .attach('images', fixture('digit-8-light-on-dark.jpg'), 'eight.jpg')
        .attach('images', fixture('digit-3-canvas-transparent.png'), 'three.png')
        .attach('images', fixture('digit-5-exif-orientation-6.jpg'), 'five.jpg');

      const response = await call;

      expect(response.status).toBe(200);
      expect(response.body.predictions.map((prediction: { label: string }) => prediction.label)).toEqual(['8', '3', '5']);
      expect(response.body.model.name).toBe(testApp.services.model.metadata.name);
    });
  });

  describe('invalid input', () => {
    test.each([
      ['no instances field', {}, 'instances'],
      ['empty instances array', { instances: [] }, 'instances'],
      ['instance without image or pixels', { instances: [{}] }, 'instances[0]'],
      ['instance with an unknown field', { instances: [{ picture: 'aGVsbG8=' }] }, 'instances[0]'],
    ])('%s is 400', async (_case, body, path) => {
      const response = await request(testApp.app).post('/predict').send(body);

      expectProblem(response, 400);
      expect(response.body.errors[0].path).toBe(path);
      expectNoLeak(response);
    });

    test.each<[string, (rows: unknown[][]) => unknown[], string]>([
      ['27 rows', (rows) => rows.slice(0, 27), 'instances[0].pixels'],
      ['a row of 29', (rows) => rows.map((row, y) => (y === 3 ? [...row, 0] : row)), 'instances[0].pixels[3]'],
      ['value 1.5', (rows) => withCell(rows, 1.5), 'instances[0].pixels[3][4]'],
      ['negative value', (rows) => withCell(rows, -0.1), 'instances[0].pixels[3][4]'],
      ['string value', (rows) => withCell(rows, '0.5'), 'instances[0].pixels[3][4]'],
      ['null value', (rows) => withCell(rows, null), 'instances[0].pixels[3][4]'],
      ['rows not arrays', () => ['x'], 'instances[0].pixels'],
    ])('pixels with %s is 400', async (_case, corrupt, path) => {
      const pixels = corrupt(digitToRows(heldOut(4)));

      const response = await request(testApp.app).post('/predict').send({ instances: [{ pixels }] });

      expectProblem(response, 400);
      expect(response.body.errors[0].path).toBe(path);
      expect(response.body.detail).toContain(path);
      expectNoLeak(response);
    });

    test('invalid base64 is 400', async () => {
      const body = { instances: [{ image: 'this is not base64!' }] };

      const response = await request(testApp.app).post('/predict').send(body);

      expectProblem(response, 400);
      expect(response.body.errors[0].path).toBe('instances[0].image');
      expect(response.body.detail).toMatch(/base64/);
      expectNoLeak(response);
    });

    test.each(['empty.png', 'corrupt-random-bytes.png', 'corrupt-truncated.jpg'])('fixture %s is 400', async (name) => {
      const instances = [imageInstance(fixture('digit-3-canvas-transparent.png')), imageInstance(fixture(name))];

      const response = await request(testApp.app).post('/predict').send({ instances });

      expectProblem(response, 400);
      expect(response.body.errors[0].path).toBe('instances[1].image');
      expectNoLeak(response);
    });

    test.each([
      ['GIF', () => sharp({ create: { width: 28, height: 28, channels: 3, background: '#fff' } }).gif().toBuffer()],
      ['TIFF', () => sharp({ create: { width: 28, height: 28, channels: 3, background: '#fff' } }).tiff().toBuffer()],
      ['SVG', async () => Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><text y="20">3</text></svg>')],
    ])('%s image is 415', async (format, makeImage) => {
      const body = { instances: [imageInstance(await makeImage())] };

      const response = await request(testApp.app).post('/predict').send(body);

      expectProblem(response, 415);
      expect(response.body.errors[0].path).toBe('instances[0].image');
      expect(response.body.detail).toContain(format);
      expectNoLeak(response);
    });

    test('blank white image is 400', async () => {
      const blank = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#ffffff' } }).png().toBuffer();

      const response = await request(testApp.app).post('/predict').send({ instances: [imageInstance(blank)] });

      expectProblem(response, 400);
      expect(response.body.errors[0].path).toBe('instances[0].image');
      expect(response.body.detail).toMatch(/no digit was found/);
      expectNoLeak(response);
    });

    test.each([
      ['null', null],
      ['both keys', { pixels: [[0]], image: 'AAAA' }],
    ])('instance of %s says which shapes are accepted', async (_name, instance) => {
      const response = await request(testApp.app).post('/predict').send({ instances: [instance] });

      expectProblem(response, 400);
      expect(response.body.errors).toEqual([{ path: 'instances[0]', message: 'expected {"pixels": [[...rows of numbers]]} or {"image": "<base64>"}, with no other keys' }]);
    });

    test('first bad item in order is reported', async () => {
      // The large blank image fails after a slow decode, the truncated one at once.
      const slow = await sharp({ create: { width: 3000, height: 3000, channels: 3, background: '#ffffff' } }).png().toBuffer();
      const fast = fixture('corrupt-truncated.jpg');

      const response = await request(testApp.app).post('/predict').send({ instances: [imageInstance(slow), imageInstance(fast)] });

      expectProblem(response, 400);
      expect(response.body.errors[0].path).toBe('instances[0].image');
    });

    test('multipart without a file is 400', async () => {
      const response = await request(testApp.app).post('/predict').field('note', 'no image attached');

      expectProblem(response, 400);
      expect(response.body.errors[0].path).toBe('files');
      expectNoLeak(response);
    });

    test('multipart non-image file is 400', async () => {
      const call = request(testApp.app)
        .post('/predict')
        .attach('images', fixture('digit-3-canvas-transparent.png'), 'three.png')
        .attach('images', Buffer.from('just some text'), 'notes.txt');

      const response = await call;

      expectProblem(response, 400);
      expect(response.body.errors[0].path).toBe('files[1]');
      expectNoLeak(response);
    });

    test('plain text body is 415', async () => {
      const response = await request(testApp.app).post('/predict').set('Content-Type', 'text/plain').send('3');

      expectProblem(response, 415);
      expectNoLeak(response);
    });
  });

  describe('asynchronous requests', () => {
    test('respond-async queues a task', async () => {
      const instances = [imageInstance(fixture('digit-2-16bit-grey.png')), { pixels: digitToRows(heldOut(6)) }];
      const sync = await request(testApp.app).post('/predict').send({ instances }).expect(200);

      const response = await request(testApp.app).post('/predict').set('Prefer', 'respond-async').send({ instances });

      expect(response.status).toBe(202);
      expect(response.body).toEqual({ id: expect.any(String), status: 'queued' });
      expect(response.headers.location).toBe(`/tasks/${response.body.id}`);
      expect(response.headers['preference-applied']).toBe('respond-async');

      const task = await waitForTask(testApp.app, response.body.id);

      expect(task.status).toBe('succeeded');
      expect(task.progress).toEqual({ done: 2, total: 2 });
      expect(task.result.predictions.map((prediction: { label: string }) => prediction.label)).toEqual(['2', '6']);
      expect(task.result.predictions).toEqual(sync.body.predictions);
      expect(task.result.model).toEqual(sync.body.model);
    });

    test('undecodable item fails alone', async () => {
      const instances = [imageInstance(fixture('digit-3-canvas-transparent.png')), imageInstance(fixture('corrupt-truncated.jpg'))];

      const response = await request(testApp.app).post('/predict').set('Prefer', 'respond-async').send({ instances });
      const task = await waitForTask(testApp.app, response.body.id);

      expect(response.status).toBe(202);
      expect(task.status).toBe('succeeded');
      expect(task.result.predictions[0].label).toBe('3');
      expect(task.result.predictions[1].error.message).toMatch(/cannot be decoded/);
    });

    test('respond-async rejects an unsupported format', async () => {
      const gif = await sharp({ create: { width: 28, height: 28, channels: 3, background: '#fff' } }).gif().toBuffer();

      const response = await request(testApp.app).post('/predict').set('Prefer', 'respond-async').send({ instances: [imageInstance(gif)] });

      expectProblem(response, 415);
      expect(response.body.errors[0].path).toBe('instances[0].image');
    });
  });
});

describe('POST /predict limits', () => {
  const apps: TestApp[] = [];

  async function appWith(env: Record<string, string>): Promise<TestApp> {
    const testApp = await startTestApp(env);
    apps.push(testApp);
    return testApp;
  }

  afterAll(async () => {
    for (const testApp of apps) await testApp.close();
  });

  test('image over MAX_IMAGE_BYTES is 413', async () => {
    const { app } = await appWith({ MAX_IMAGE_BYTES: '1000' });
    const image = fixture('digit-3-canvas-transparent.png');

    const response = await request(app).post('/predict').send({ instances: [imageInstance(image)] });

    expectProblem(response, 413);
    expect(response.body.errors[0].path).toBe('instances[0].image');
    expect(response.body.detail).toContain('MAX_IMAGE_BYTES');
    expectNoLeak(response);
  });

  test('multipart file over MAX_IMAGE_BYTES is 413', async () => {
    const { app } = await appWith({ MAX_IMAGE_BYTES: '1000' });

    const response = await request(app).post('/predict').attach('images', fixture('digit-3-canvas-transparent.png'), 'three.png');

    expectProblem(response, 413);
    expectNoLeak(response);
  });

  test('image over MAX_IMAGE_PIXELS is 413', async () => {
    const { app } = await appWith({ MAX_IMAGE_PIXELS: '1000' });
    const image = fixture('digit-3-canvas-transparent.png');

    const response = await request(app).post('/predict').send({ instances: [imageInstance(image)] });

    expectProblem(response, 413);
    expect(response.body.errors[0].path).toBe('instances[0].image');
    expect(response.body.detail).toContain('MAX_IMAGE_PIXELS');
    expectNoLeak(response);
  });

  test('more instances than MAX_ITEMS is 413', async () => {
    const { app } = await appWith({ MAX_ITEMS: '2' });
    const instances = [0, 1, 2].map((label) => ({ pixels: digitToRows(heldOut(label)) }));

    const response = await request(app).post('/predict').send({ instances });

    expectProblem(response, 413);
    expect(response.body.errors[0].path).toBe('instances');
    expect(response.body.detail).toContain('MAX_ITEMS');
    expectNoLeak(response);
  });
});
