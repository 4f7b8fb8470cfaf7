import { TRAIN_SHARE, loadDigitSplits } from '../scripts/mnist-data';

describe('mnist split', () => {
  const splits = loadDigitSplits();

  test('split sizes are 7,996 and 2,004', () => {
    expect(splits.train.length).toBe(7996);
    expect(splits.test.length).toBe(2004);
  });

  test('splits share no sample', () => {
    const key = (sample: { label: number; index: number }) => `${sample.label}:${sample.index}`;
    const trainKeys = new Set(splits.train.map(key));

    const overlapping = splits.test.filter((sample) => trainKeys.has(key(sample)));

    expect(overlapping).toHaveLength(0);
  });

  test('splits share no identical image', () => {
    const pixelsKey = (pixels: Float32Array) => Buffer.from(pixels.buffer).toString('base64');
    const trainImages = new Set(splits.train.map((sample) => pixelsKey(sample.pixels)));

    const repeated = splits.test.filter((sample) => trainImages.has(pixelsKey(sample.pixels)));

    expect(repeated).toHaveLength(0);
  });

  test('each digit splits by index at 80%', () => {
    for (let label = 0; label < 10; label++) {
      const train = splits.train.filter((sample) => sample.label === label);
      const test = splits.test.filter((sample) => sample.label === label);
      const count = train.length + test.length;

      expect(train.length).toBe(Math.floor(count * TRAIN_SHARE));
      expect(Math.max(...train.map((sample) => sample.index))).toBeLessThan(Math.min(...test.map((sample) => sample.index)));
      expect(test[test.length - 1].index).toBe(count - 1);
    }
  });
});
