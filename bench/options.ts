import path from 'node:path';
import { parseArgs } from 'node:util';

export interface BenchOptions {
  quick: boolean;
  /** Seconds of each measured load point. */
  durationSeconds: number;
  /** Seconds of unmeasured load before each point. */
  warmupSeconds: number;
  /** Repeats of every server and point; ratios are computed within one round. */
  rounds: number;
  /** Requests of the memory run; RSS is also read after the first quarter of them. */
  memoryRequests: number;
  /** Seconds of LoadedModel.predict calls per batch size in the model-only measurement. */
  modelSecondsPerBatch: number;
  /** Directory of fastapi_peer.py. */
  peerDir: string;
  help: boolean;
}

export const USAGE = `Usage: npm run bench -- [options]

Measures the model alone, POST /predict of this service, a bare Express app and the FastAPI +
PyTorch peer on this machine, then prints a table and writes bench/results.json and the results
section of docs/benchmarks.md. With CI=true it exits at once without measuring.

Options:
  --duration SECONDS    measured seconds per load point (default 4)
  --warmup SECONDS      unmeasured seconds of load before each point (default 1)
  --rounds N            repeats of every measurement, at least 1 (default 2)
  --requests N          requests of the memory run (default 20000)
  --model-seconds S     seconds per batch size of the model-only measurement (default 2)
  --peer-dir PATH       directory of fastapi_peer.py (default ../shared/peer from the repository)
  --quick               one round of 1 s points, 0.3 s warm-ups and 2000 memory-run requests,
                        to check that the benchmark runs; its figures are not a record
  --help                print this text`;

function positiveNumber(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) throw new Error(`--${name} must be a positive number, got "${value}"`);
  return number;
}

function positiveInteger(value: string | undefined, name: string, fallback: number): number {
  const number = positiveNumber(value, name, fallback);
  if (!Number.isInteger(number)) throw new Error(`--${name} must be a whole number, got "${value}"`);
  return number;
}

/** Parses the command-line options; throws an Error naming the invalid option. */
export function parseBenchOptions(argv: string[], root: string): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      requests: { type: 'string' },
      'model-seconds': { type: 'string' },
      'peer-dir': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });

  const quick = values.quick ?? false;
  const memoryRequests = positiveInteger(values.requests, 'requests', quick ? 2000 : 20_000);
  if (memoryRequests < 4) throw new Error(`--requests must be at least 4, got ${memoryRequests}`);

  return {
    quick,
    durationSeconds: positiveNumber(values.duration, 'duration', quick ? 1 : 4),
    warmupSeconds: positiveNumber(values.warmup, 'warmup', quick ? 0.3 : 1),
    rounds: positiveInteger(values.rounds, 'rounds', quick ? 1 : 2),
    memoryRequests,
    modelSecondsPerBatch: positiveNumber(values['model-seconds'], 'model-seconds', quick ? 0.5 : 2),
    // npm runs scripts in the package root; INIT_CWD is where the user typed the command.
    peerDir: values['peer-dir'] !== undefined ? path.resolve(process.env.INIT_CWD ?? process.cwd(), values['peer-dir']) : path.join(root, '..', 'shared', 'peer'),
    help: values.help ?? false,
  };
}

/** Returns the command that started this run, as a user would type it. */
export function commandLine(argv: string[]): string {
  const quoted = argv.map((arg) => (/^[\w./=:-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`));
  if (process.env.npm_lifecycle_event === 'bench') return ['npm run bench', ...(quoted.length > 0 ? ['--', ...quoted] : [])].join(' ');
  return ['node dist/scripts/bench.js', ...quoted].join(' ');
}
