import * as tf from '@tensorflow/tfjs';
import request from 'supertest';
import { TestApp, startTestApp, waitForTask } from './helpers/app';
import { digitToRows, fixture, heldOutDigits } from './helpers/images';

jest.setTimeout(60_000);

describe('tensor memory', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('predictions leave no tensor behind', async () => {
    const image = fixture('digit-3-canvas-transparent.png').toString('base64');
    const broken = fixture('corrupt-truncated.jpg').toString('base64');
    const pixels = digitToRows(heldOutDigits()[0]);
    const before = tf.memory().numTensors;

    for (let i = 0; i < 20; i++) {
      await request(testApp.app).post('/predict').send({ instances: [{ image }, { pixels }] }).expect(200);
      await request(testApp.app).post('/predict').send({ instances: [{ image: broken }] }).expect(400);
      await request(testApp.app).post('/predict').send({ instances: [{ pixels: [[2]] }] }).expect(400);
    }
    const queued = await request(testApp.app)
      .post('/predict')
      .set('Prefer', 'respond-async')
      .send({ instances: [{ image }, { image: broken }, { pixels }] })
      .expect(202);
    await waitForTask(testApp.app, queued.body.id);

    expect(tf.memory().numTensors).toBe(before);
  });
});
