import request from 'supertest';
import { TestApp, startTestApp } from './helpers/app';
import { digitToPng, heldOutDigits } from './helpers/images';

// Sending digits through HTTP as PNG tests the whole path: upload, decode, preprocessing, model.
jest.setTimeout(120_000);

const SAMPLE_SIZE = 600;
const BATCH = 50;

describe('held-out accuracy over HTTP', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('at least 97% of held-out digits are right', async () => {
    // Every 3rd held-out digit: an even spread over all ten digits, which the split stores in order.
    const digits = heldOutDigits().filter((_, i) => i % 3 === 0).slice(0, SAMPLE_SIZE);
    expect(digits.length).toBe(SAMPLE_SIZE);

    let correct = 0;
    for (let start = 0; start < digits.length; start += BATCH) {
      const batch = digits.slice(start, start + BATCH);
      const instances = await Promise.all(batch.map(async (digit) => ({ image: (await digitToPng(digit)).toString('base64') })));

      const response = await request(testApp.app).post('/predict').send({ instances });

      expect(response.status).toBe(200);
      response.body.predictions.forEach((prediction: { label: string }, i: number) => {
        if (prediction.label === String(batch[i].label)) correct++;
      });
    }

    const accuracy = correct / digits.length;
    console.log(`held-out accuracy over HTTP: ${(accuracy * 100).toFixed(2)}% of ${digits.length} digits`);
    expect(accuracy).toBeGreaterThanOrEqual(0.97);
  });
});
