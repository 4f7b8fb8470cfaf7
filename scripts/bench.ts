/**
 * npm run bench: measures the model alone, POST /predict of the built server in four
 * configurations, a bare Express app (the HTTP ceiling) and the FastAPI + PyTorch peer, all in one
 * run on this machine. Then it follows the server's memory over a long run. It prints a table and
 * writes bench/results.json and the results section of docs/benchmarks.md, which explains every
 * figure. With CI=true it exits 0 at once, because the figures need an idle machine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LoadFigures, LoadRequest } from '../bench/load';
import { runLoad } from '../bench/load';
import type { MemoryReading } from '../bench/memory-server';
import type { ModelOnlyOutput } from '../bench/model-only';
import { BenchOptions, USAGE, commandLine, parseBenchOptions } from '../bench/options';
import { BenchDigit, loadBenchDigits, outOfRangeBody, predictBody, shortImageBody } from '../bench/payloads';
import { checkPeer, compareWithPeer, peerStartOptions } from '../bench/peer';
import {
  BenchProcess,
  Pinning,
  StartOptions,
  findFreePort,
  listDescendants,
  pinLoadGenerator,
  planPinning,
  startProcess,
  stopAllProcesses,
  stopProcess,
  treeRssBytes,
  waitForExit,
  waitUntilServing,
} from '../bench/processes';
import { formatMarkdownSection, formatTextReport, writeMarkdownSection } from '../bench/report';
import type { BenchResults, MemoryRun, ModelOnlyRun, ServerId, ServerRun, ServerSpec } from '../bench/results';
import { MULTI_INSTANCES, MULTI_INSTANCE_CONNECTIONS, evaluateTargets } from '../bench/targets';

const ROOT = path.join(__dirname, '..', '..');
const RESULTS_PATH = path.join(ROOT, 'bench', 'results.json');
const DOC_PATH = path.join(ROOT, 'docs', 'benchmarks.md');

const CONNECTIONS = [1, 8, 32, 64, 128];
const MODEL_BATCH_SIZES = [1, 8, 16, 32, 64, 128];
const MEMORY_CONNECTIONS = 32;
const MEMORY_WARMUP_REQUESTS = 1000;
const MODEL_ONLY_TIMEOUT_MS = 180_000;
const IPC_TIMEOUT_MS = 10_000;

/**
 * The servers of every round, in order. The peers come after 'w1-on' so that their predictions can
 * be compared with the service's. The peer's /predict_async runs only at the connection counts of
 * the targets, to keep the run short.
 */
const SERVERS: ServerSpec[] = [
  { id: 'bare', label: 'bare Express 5', kind: 'bare', workers: 1, env: {}, route: '/predict', connections: CONNECTIONS, multiInstanceConnections: [] },
  serviceSpec('w1-on', 'inferline WORKERS=1 batching on', 1, { WORKERS: '1' }),
  serviceSpec('w1-off', 'inferline WORKERS=1 batching off', 1, { WORKERS: '1', MAX_BATCH_SIZE: '1' }),
  serviceSpec('w2-on', 'inferline WORKERS=2 batching on', 2, { WORKERS: '2' }),
  serviceSpec('w2-off', 'inferline WORKERS=2 batching off', 2, { WORKERS: '2', MAX_BATCH_SIZE: '1' }),
  {
    id: 'peer',
    label: 'FastAPI + PyTorch peer /predict',
    kind: 'peer',
    workers: 1,
    env: {},
    route: '/predict',
    connections: CONNECTIONS,
    multiInstanceConnections: MULTI_INSTANCE_CONNECTIONS,
  },
  {
    id: 'peer-async',
    label: 'FastAPI + PyTorch peer /predict_async',
    kind: 'peer',
    workers: 1,
    env: {},
    route: '/predict_async',
    connections: [1, 32],
    multiInstanceConnections: [],
  },
];

/** Builds one configuration of this service. Batching is on unless MAX_BATCH_SIZE=1. */
function serviceSpec(id: ServerId, label: string, workers: number, env: Record<string, string>): ServerSpec {
  return { id, label, kind: 'inferline', workers, env, route: '/predict', connections: CONNECTIONS, multiInstanceConnections: MULTI_INSTANCE_CONNECTIONS };
}

/** State shared by the measurements of one run. */
interface BenchContext {
  options: BenchOptions;
  pinning: Pinning;
  results: BenchResults;
  workDir: string;
  modelDir: string;
  digits: BenchDigit[];
}

function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Variables of the processes that load the model: only these, so the caller's shell cannot change a run. */
function modelEnv(context: BenchContext): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    MODEL_DIR: context.modelDir,
    ...(process.env.TF_BACKEND ? { TF_BACKEND: process.env.TF_BACKEND } : {}),
  };
}

// Requests per client and window that the benchmarked servers allow: more than any run sends.
const BENCH_RATE_LIMIT = 1_000_000_000;

/** Variables of the service: a fresh database and log directory, file logging only, and the spec's own. */
function serviceEnv(context: BenchContext, spec: ServerSpec, port: number, name: string): Record<string, string> {
  return {
    ...modelEnv(context),
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_PATH: path.join(context.workDir, `${name}.db`),
    LOG_DIR: path.join(context.workDir, `${name}-logs`),
    LOG_CONSOLE: 'false',
    // The load comes from one client address, far above the default rate limits (600 predictions a
    // minute per client), which would reject most requests with 429. The limiter still counts
    // every request, so its cost stays in the figures.
    PREDICT_RATE_LIMIT: String(BENCH_RATE_LIMIT),
    INFER_RATE_LIMIT: String(BENCH_RATE_LIMIT),
    ...spec.env,
  };
}


function startOptionsFor(context: BenchContext, spec: ServerSpec, port: number, cpus: string, round: number): StartOptions {
  const name = `${spec.id}-round-${round}`;
  if (spec.kind === 'peer') return peerStartOptions(name, context.options.peerDir, context.modelDir, port, cpus);
  const script = spec.kind === 'bare' ? path.join(ROOT, 'dist', 'bench', 'bare-express.js') : path.join(ROOT, 'dist', 'server.js');
  const env = spec.kind === 'bare' ? { PATH: process.env.PATH ?? '/usr/bin:/bin', HOST: '127.0.0.1', PORT: String(port) } : serviceEnv(context, spec, port, name);
  return { name, command: process.execPath, args: [script], cwd: ROOT, env, cpus };
}

/** Runs LoadedModel.predict at each batch size in a child process pinned like a one-process server. */
async function measureModelOnly(context: BenchContext, round: number): Promise<ModelOnlyRun> {
  const run: ModelOnlyRun = { round, backend: null, figures: [], error: null };
  const child = startProcess(
    {
      name: `model-only-round-${round}`,
      command: process.execPath,
      args: [path.join(ROOT, 'dist', 'bench', 'model-only.js')],
      cwd: ROOT,
      env: { ...modelEnv(context), BENCH_BATCH_SIZES: MODEL_BATCH_SIZES.join(','), BENCH_SECONDS: String(context.options.modelSecondsPerBatch) },
      cpus: context.pinning.serverCpus(1),
    },
    context.workDir,
  );
  try {
    const code = await waitForExit(child, MODEL_ONLY_TIMEOUT_MS);
    const jsonLine = fs.readFileSync(child.outputPath, 'utf8').split('\n').reverse().find((line) => line.startsWith('{'));
    if (code !== 0 || jsonLine === undefined) throw new Error(`exited with code ${code}\n${child.outputTail()}`);
    const output = JSON.parse(jsonLine) as ModelOnlyOutput;
    run.backend = output.backend;
    run.figures = output.figures;
    for (const figure of output.figures) progress(`  model only, batch ${figure.batchSize}: ${figure.samplesPerSecond.toFixed(0)} samples/s`);
  } catch (error) {
    run.error = `model-only measurement failed: ${messageOf(error)}`;
    progress(`  ${run.error}`);
  } finally {
    await stopProcess(child);
  }
  return run;
}

/** Measures one load point after an unmeasured warm-up at the same load, and records it. */
async function measurePoint(
  context: BenchContext,
  round: number,
  spec: ServerSpec,
  url: string,
  body: string,
  instancesPerRequest: number,
  connections: number,
): Promise<void> {
  const { options, results } = context;
  const load = { url, requests: [{ body }], connections, instancesPerRequest };
  try {
    await runLoad({ ...load, seconds: options.warmupSeconds });
    const figures = await runLoad({ ...load, seconds: options.durationSeconds });
    results.points.push({ round, server: spec.id, instancesPerRequest, connections, figures, error: null });
    progress(
      `  ${spec.label}, ${instancesPerRequest} instance(s)/request, ${connections} connections: ${figures.requestsPerSecond.toFixed(0)} req/s, ` +
        `p50 ${figures.p50Ms.toFixed(2)} ms, p99 ${figures.p99Ms.toFixed(2)} ms, errors ${figures.errors}, non-2xx ${figures.non2xx}, ` +
        `load generator CPU ${figures.loadGeneratorCpuPercent.toFixed(0)}%`,
    );
  } catch (error) {
    results.points.push({ round, server: spec.id, instancesPerRequest, connections, figures: null, error: messageOf(error) });
    progress(`  ${spec.label}, ${connections} connections: failed: ${messageOf(error)}`);
  }
}

function checkPredictions(spec: ServerSpec, response: unknown, expected: number): void {
  if (spec.kind === 'bare') return;
  const predictions = (response as { predictions?: unknown[] }).predictions;
  if (!Array.isArray(predictions) || predictions.length !== expected) {
    throw new Error(`${spec.label} returned ${JSON.stringify(response).slice(0, 300)} for ${expected} instances`);
  }
}

/**
 * Starts one server, checks its predictions, measures every point against it and stops it.
 * `reference` receives the service's predictions of the 32-digit body in this round, for the peer.
 */
async function measureServer(context: BenchContext, round: number, spec: ServerSpec, reference: { response: unknown }): Promise<void> {
  const { pinning, results, digits } = context;
  const cpus = pinning.serverCpus(spec.workers);
  const run: ServerRun = {
    round,
    server: spec.id,
    cpus,
    sharesLoadGeneratorCore: pinning.sharesLoadGeneratorCore(spec.workers),
    childProcesses: null,
    rssAfterBytes: null,
    error: null,
  };
  results.serverRuns.push(run);
  progress(`round ${round}: ${spec.label} on cores ${cpus}`);

  let server: BenchProcess | null = null;
  try {
    const port = await findFreePort();
    server = startProcess(startOptionsFor(context, spec, port, cpus, round), context.workDir);
    const url = `http://127.0.0.1:${port}${spec.route}`;
    const multiBody = predictBody(digits.slice(0, MULTI_INSTANCES));

    const firstResponse = await waitUntilServing(server, url, multiBody);
    checkPredictions(spec, firstResponse, MULTI_INSTANCES);
    if (spec.id === 'w1-on') {
      reference.response = firstResponse;
      const model = (await (await fetch(`http://127.0.0.1:${port}/model`)).json()) as { backend?: string };
      results.machine.backend ??= model.backend ?? null;
    }
    if (spec.kind === 'peer' && reference.response !== null) results.peer.agreement = compareWithPeer(reference.response, firstResponse);
    run.childProcesses = listDescendants(server.pid)?.length ?? null;

    const singleBody = predictBody(digits.slice(0, 1));
    for (const connections of spec.connections) await measurePoint(context, round, spec, url, singleBody, 1, connections);
    for (const connections of spec.multiInstanceConnections) await measurePoint(context, round, spec, url, multiBody, MULTI_INSTANCES, connections);
    run.rssAfterBytes = treeRssBytes(server.pid);
  } catch (error) {
    run.error = messageOf(error);
    progress(`  ${spec.label}: ${run.error}`);
  } finally {
    if (server) await stopProcess(server);
  }
}

/** Asks the memory-run process for its memory reading over IPC. */
function readMemory(target: BenchProcess): Promise<MemoryReading> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${target.name} did not return its memory reading within ${IPC_TIMEOUT_MS} ms`)), IPC_TIMEOUT_MS);
    target.child.once('message', (reading) => {
      clearTimeout(timer);
      resolve(reading as MemoryReading);
    });
    target.child.send('memory');
  });
}

function addCounts(total: Record<string, number>, figures: LoadFigures): void {
  for (const [status, count] of Object.entries(figures.statusCounts)) total[status] = (total[status] ?? 0) + count;
}

/**
 * Sends `memoryRequests` requests, 10% of them invalid, to the app of app.ts in a child process, and
 * reads its RSS and tf.memory() after the warm-up, after the first quarter and at the end.
 */
async function measureMemory(context: BenchContext): Promise<MemoryRun> {
  const { options, digits } = context;
  const spec = SERVERS.find((candidate) => candidate.id === 'w1-on') as ServerSpec;
  const quarter = Math.round(options.memoryRequests / 4);

  // Each connection sends these in turn from the first, so an invalid request in every tenth place
  // keeps the share near 10% in each part of the run, not only over the whole of it.
  const valid = digits.slice(0, 18).map((digit) => ({ body: predictBody([digit]) }));
  const invalid = [{ body: outOfRangeBody(digits[0]) }, { body: shortImageBody(digits[1]) }];
  const requests: LoadRequest[] = [...valid.slice(0, 9), invalid[0], ...valid.slice(9), invalid[1]];

  const memory: MemoryRun = {
    server: spec.id,
    connections: MEMORY_CONNECTIONS,
    warmupRequests: Math.min(MEMORY_WARMUP_REQUESTS, quarter),
    requests: options.memoryRequests,
    invalidShare: invalid.length / requests.length,
    afterWarmup: null,
    atQuarter: null,
    atEnd: null,
    statusCounts: {},
    errors: 0,
    error: null,
  };
  progress(`memory run: ${options.memoryRequests} requests, ${memory.invalidShare * 100}% invalid, ${MEMORY_CONNECTIONS} connections`);

  const port = await findFreePort();
  const server = startProcess(
    {
      name: 'memory-server',
      command: process.execPath,
      args: [path.join(ROOT, 'dist', 'bench', 'memory-server.js')],
      cwd: ROOT,
      env: serviceEnv(context, spec, port, 'memory'),
      cpus: context.pinning.serverCpus(1),
      ipc: true,
    },
    context.workDir,
  );
  try {
    const url = `http://127.0.0.1:${port}/predict`;
    await waitUntilServing(server, url, requests[0].body);
    const load = { url, requests, connections: MEMORY_CONNECTIONS, instancesPerRequest: 1 };

    await runLoad({ ...load, amount: memory.warmupRequests });
    memory.afterWarmup = await readMemory(server);

    const first = await runLoad({ ...load, amount: quarter });
    memory.atQuarter = await readMemory(server);

    const rest = await runLoad({ ...load, amount: options.memoryRequests - quarter });
    memory.atEnd = await readMemory(server);

    addCounts(memory.statusCounts, first);
    addCounts(memory.statusCounts, rest);
    memory.errors = first.errors + rest.errors;
    progress(
      `  numTensors ${memory.afterWarmup.numTensors} -> ${memory.atEnd.numTensors}, RSS ${(memory.atQuarter.rssBytes / 2 ** 20).toFixed(1)} MB at ` +
        `${quarter} -> ${(memory.atEnd.rssBytes / 2 ** 20).toFixed(1)} MB at ${options.memoryRequests}`,
    );
  } catch (error) {
    memory.error = messageOf(error);
    progress(`  memory run failed: ${memory.error}`);
  } finally {
    await stopProcess(server);
  }
  return memory;
}

function readModelIdentity(modelDir: string): { name: string; version: string } | null {
  try {
    const metadata = JSON.parse(fs.readFileSync(path.join(modelDir, 'metadata.json'), 'utf8')) as { name: string; version: string };
    return { name: metadata.name, version: metadata.version };
  } catch {
    return null;
  }
}

function initialResults(options: BenchOptions, argv: string[], pinning: Pinning, modelDir: string): BenchResults {
  const peer = checkPeer(options.peerDir);
  const { peerDir: _peerDir, help: _help, ...shownOptions } = options;
  return {
    date: new Date().toISOString(),
    command: commandLine(argv),
    options: shownOptions,
    machine: {
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      memoryBytes: os.totalmem(),
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      node: process.version,
      backend: null,
      model: readModelIdentity(modelDir),
      autocannon: (require('autocannon/package.json') as { version: string }).version,
      loadAverageAtStart: os.loadavg(),
      loadAverageAtEnd: [],
    },
    pinning: { enabled: pinning.enabled, reason: pinning.reason, loadGeneratorCpus: pinning.loadGeneratorCpus },
    servers: SERVERS,
    peer: {
      dir: options.peerDir,
      available: peer.available,
      reason: peer.available ? null : peer.reason,
      versions: peer.available ? peer.versions : null,
      agreement: null,
    },
    modelOnly: [],
    serverRuns: [],
    points: [],
    memory: null,
    targets: [],
    durationSeconds: 0,
  };
}

async function runBenchmark(options: BenchOptions, argv: string[]): Promise<void> {
  const startedAt = Date.now();
  const pinning = planPinning();
  pinLoadGenerator(pinning);
  const modelDir = path.resolve(ROOT, process.env.MODEL_DIR ?? path.join('models', 'digits'));
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-bench-'));
  const results = initialResults(options, argv, pinning, modelDir);
  const context: BenchContext = { options, pinning, results, workDir, modelDir, digits: loadBenchDigits(MULTI_INSTANCES) };
  if (!results.peer.available) progress(`peer not measured: ${results.peer.reason}`);

  try {
    const rounds = Array.from({ length: options.rounds }, (_, index) => index + 1);
    for (const round of rounds) {
      progress(`round ${round} of ${options.rounds}: model only`);
      results.modelOnly.push(await measureModelOnly(context, round));
      const reference = { response: null as unknown };
      for (const spec of SERVERS) {
        if (spec.kind === 'peer' && !results.peer.available) continue;
        await measureServer(context, round, spec, reference);
      }
    }
    results.memory = await measureMemory(context);

    results.machine.loadAverageAtEnd = os.loadavg();
    results.durationSeconds = (Date.now() - startedAt) / 1000;
    results.targets = evaluateTargets(results, rounds);
  } finally {
    await stopAllProcesses();
    fs.rmSync(workDir, { recursive: true, force: true });
  }

  process.stdout.write(`\n${formatTextReport(results)}\n`);
  fs.mkdirSync(path.dirname(RESULTS_PATH), { recursive: true });
  fs.writeFileSync(RESULTS_PATH, `${JSON.stringify(results, null, 2)}\n`);
  fs.mkdirSync(path.dirname(DOC_PATH), { recursive: true });
  writeMarkdownSection(DOC_PATH, formatMarkdownSection(results));
  progress(`\nwrote ${path.relative(ROOT, RESULTS_PATH)} and the results section of ${path.relative(ROOT, DOC_PATH)}`);
}

async function main(): Promise<void> {
  if (process.env.CI === 'true') {
    process.stdout.write('CI=true: benchmark skipped; its figures need an idle machine and the peer needs Debian packages.\n');
    return;
  }

  const argv = process.argv.slice(2);
  let options: BenchOptions;
  try {
    options = parseBenchOptions(argv, ROOT);
  } catch (error) {
    process.stderr.write(`${messageOf(error)}\n\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  await runBenchmark(options, argv);
}

main().catch((error: unknown) => {
  process.stderr.write(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
