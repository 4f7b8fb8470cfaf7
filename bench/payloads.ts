import { loadDigitSplits } from '../scripts/mnist-data';

const SIDE = 28;

/** A held-out digit of the mnist package, as a client would send it: 28 rows of 28 values in 0..1. */
export interface BenchDigit {
  label: number;
  rows: number[][];
  pixels: Float32Array;
}

/**
 * Returns `count` held-out digits, cycling through the labels 0..9 so that a batch mixes them.
 * Values have the three decimals that the mnist package stores.
 */
export function loadBenchDigits(count: number): BenchDigit[] {
  const byLabel = new Map<number, Float32Array[]>();
  for (const sample of loadDigitSplits().test) {
    const samples = byLabel.get(sample.label) ?? [];
    samples.push(sample.pixels);
    byLabel.set(sample.label, samples);
  }

  const digits: BenchDigit[] = [];
  for (let i = 0; i < count; i++) {
    const label = i % 10;
    const samples = byLabel.get(label) ?? [];
    const source = samples[Math.floor(i / 10) % samples.length];
    // Rounding undoes the float32 conversion of loadDigitSplits, so the JSON carries the stored values.
    const values = Array.from(source, (value) => Math.round(value * 1000) / 1000);
    const rows = Array.from({ length: SIDE }, (_, y) => values.slice(y * SIDE, (y + 1) * SIDE));
    digits.push({ label, rows, pixels: Float32Array.from(values) });
  }
  return digits;
}

/** Builds the JSON body that both this service and the FastAPI peer accept: `{instances: [{pixels}]}`. */
export function predictBody(digits: BenchDigit[]): string {
  return JSON.stringify({ instances: digits.map((digit) => ({ pixels: digit.rows })) });
}

/** Builds a body that the service rejects with 400: one pixel of `digit` set out of the 0..1 range. */
export function outOfRangeBody(digit: BenchDigit): string {
  const rows = digit.rows.map((row) => [...row]);
  rows[14][14] = 2;
  return JSON.stringify({ instances: [{ pixels: rows }] });
}

/** Builds a body that the service rejects with 400: the last row of `digit` is missing. */
export function shortImageBody(digit: BenchDigit): string {
  return JSON.stringify({ instances: [{ pixels: digit.rows.slice(0, SIDE - 1) }] });
}
