/**
 * Child process of the benchmark: measures LoadedModel.predict in-process, without HTTP, at each
 * batch size given in BENCH_BATCH_SIZES (comma-separated) for BENCH_SECONDS each. Uses MODEL_DIR and
 * TF_BACKEND as the server does. Writes one JSON line to stdout: the backend and samples/s per size.
 */
import { loadBenchDigits } from './payloads';
import { selectBackend } from '../services/backend';
import { loadConfig } from '../services/config';
import { loadModel } from '../services/model';

// Calls before timing each batch size, so that first-call allocations are not timed.
const WARM_UP_CALLS = 3;

export interface ModelOnlyFigure {
  batchSize: number;
  calls: number;
  seconds: number;
  samplesPerSecond: number;
}

export interface ModelOnlyOutput {
  backend: string;
  figures: ModelOnlyFigure[];
}

async function measureBatchSizes(): Promise<ModelOnlyOutput> {
  const config = loadConfig();
  const batchSizes = (process.env.BENCH_BATCH_SIZES ?? '1').split(',').map(Number);
  const seconds = Number(process.env.BENCH_SECONDS ?? '2');

  const backend = await selectBackend(config.TF_BACKEND);
  // The largest batch size as MAX_BATCH_SIZE, so that predict() never splits a measured batch.
  const model = await loadModel(config.MODEL_DIR, Math.max(...batchSizes));
  const digits = loadBenchDigits(Math.max(...batchSizes));

  const figures: ModelOnlyFigure[] = [];
  for (const batchSize of batchSizes) {
    const inputs = digits.slice(0, batchSize).map((digit) => digit.pixels);
    for (let i = 0; i < WARM_UP_CALLS; i++) await model.predict(inputs);

    let calls = 0;
    const started = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < seconds) {
      await model.predict(inputs);
      calls++;
      elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    }
    figures.push({ batchSize, calls, seconds: elapsed, samplesPerSecond: (calls * batchSize) / elapsed });
  }
  return { backend, figures };
}

measureBatchSizes().then(
  (output) => process.stdout.write(`${JSON.stringify(output)}\n`),
  (error: unknown) => {
    process.stderr.write(`model-only measurement failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
