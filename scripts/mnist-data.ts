import fs from 'node:fs';
import path from 'node:path';

export const DIGIT_LABELS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
const PIXELS_PER_DIGIT = 28 * 28;

// For each digit, the first 80% of its samples train and the last 20% are held out for testing.
export const TRAIN_SHARE = 0.8;

/** One handwritten digit of the mnist package: 784 values in 0..1, light ink on black. */
export interface DigitSample {
  label: number;
  /** Position of the sample in its digit's file, which identifies it across splits. */
  index: number;
  pixels: Float32Array;
}

export interface DigitSplits {
  train: DigitSample[];
  test: DigitSample[];
}

/**
 * Splits the mnist package's digits by index, never at random: for each digit the first 80% of its
 * samples are the training split and the rest the held-out test split. The package's own
 * `set()` helper picks samples at random, which would mix the two.
 */
export function loadDigitSplits(): DigitSplits {
  const digitsDirectory = path.join(path.dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  const splits: DigitSplits = { train: [], test: [] };

  for (let label = 0; label < DIGIT_LABELS.length; label++) {
    const file = path.join(digitsDirectory, `${label}.json`);
    const raw = (JSON.parse(fs.readFileSync(file, 'utf8')) as { data: number[] }).data;
    const count = Math.floor(raw.length / PIXELS_PER_DIGIT);
    const trainCount = Math.floor(count * TRAIN_SHARE);

    for (let index = 0; index < count; index++) {
      const pixels = Float32Array.from(raw.slice(index * PIXELS_PER_DIGIT, (index + 1) * PIXELS_PER_DIGIT));
      const sample = { label, index, pixels };
      if (index < trainCount) splits.train.push(sample);
      else splits.test.push(sample);
    }
  }
  return splits;
}
