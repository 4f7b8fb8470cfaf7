import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { DigitSample, loadDigitSplits } from '../../scripts/mnist-data';

export const FIXTURES = path.join(__dirname, '..', 'fixtures');

/** Reads a file of tests/fixtures. */
export function fixture(name: string): Buffer {
  return fs.readFileSync(path.join(FIXTURES, name));
}

let splits: ReturnType<typeof loadDigitSplits> | null = null;

/** Returns the held-out digits of the mnist package: never used in training. */
export function heldOutDigits(): DigitSample[] {
  splits ??= loadDigitSplits();
  return splits.test;
}

/** Encodes a 28x28 MNIST digit (light on black, 0..1) as a PNG, as a client would upload it. */
export function digitToPng(sample: DigitSample): Promise<Buffer> {
  const grey = Buffer.from(Array.from(sample.pixels, (value) => Math.round(value * 255)));
  return sharp(grey, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
}

/** Returns the digit as a 28x28 array of rows, for `{pixels}` instances. */
export function digitToRows(sample: DigitSample): number[][] {
  const rows: number[][] = [];
  for (let y = 0; y < 28; y++) rows.push(Array.from(sample.pixels.subarray(y * 28, (y + 1) * 28)));
  return rows;
}
