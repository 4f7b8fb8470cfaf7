import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ExitStatus, MODEL_DIR, ServerProcess, delay, findFreePort, isJson, parseJsonLines, spawnServer, stopLeftoverServers, withMessage } from './helpers';

// Each case starts one server process, which loads TF.js before it fails (1-2 s).
const TEST_TIMEOUT_MS = 30_000;

const MODEL_FILES = ['model.json', 'weights.bin', 'metadata.json'];
// Linux mounts procfs at /proc; other systems have no such directory.
const HAS_PROC = fs.existsSync('/proc/self');

let scratchDirectory: string;
/** The listener that occupies the port in the PORT-in-use case. */
let portHolder: net.Server | null = null;

beforeEach(() => {
  scratchDirectory = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-startup-'));
});

afterEach(async () => {
  await stopLeftoverServers();
  fs.rmSync(scratchDirectory, { recursive: true, force: true });
  const holder = portHolder;
  portHolder = null;
  if (holder) await new Promise((resolve) => holder.close(resolve));
});

/** Copies the shipped model (without the training checkpoint) into the scratch directory. */
function copyModel(): string {
  const directory = path.join(scratchDirectory, 'model');
  fs.mkdirSync(directory);
  for (const file of MODEL_FILES) fs.copyFileSync(path.join(MODEL_DIR, file), path.join(directory, file));
  return directory;
}

function editMetadata(modelDir: string, changes: Record<string, unknown>): void {
  const file = path.join(modelDir, 'metadata.json');
  const metadata = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(file, JSON.stringify({ ...metadata, ...changes }));
}

/** Counts TCP connections that `port` accepts while the process runs, trying every 50 ms. */
async function countAcceptedConnections(port: number, exited: Promise<ExitStatus>): Promise<number> {
  let running = true;
  void exited.finally(() => {
    running = false;
  });
  let accepted = 0;
  while (running) {
    const connected = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (connected) accepted++;
    await delay(50);
  }
  return accepted;
}

function isTfjsNodeInstalled(): boolean {
  try {
    require.resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
}

interface FailureCase {
  name: string;
  /** Sets up the files the case needs and returns the environment of the server. */
  arrange(): Promise<{ env: Record<string, string>; expectedText: string[] }>;
  /** False when the port is taken on purpose, so connections to it say nothing about the server. */
  probePort?: boolean;
  skip?: boolean;
}

const cases: FailureCase[] = [
  {
    name: 'missing MODEL_DIR',
    async arrange() {
      const missing = path.join(scratchDirectory, 'no-such-model');
      return { env: { MODEL_DIR: missing }, expectedText: [missing, 'does not exist', 'MODEL_DIR'] };
    },
  },
  {
    name: 'model.json not valid JSON',
    async arrange() {
      const modelDir = copyModel();
      const modelJson = path.join(modelDir, 'model.json');
      fs.writeFileSync(modelJson, '{"modelTopology": ');
      return { env: { MODEL_DIR: modelDir }, expectedText: [modelJson, 'not valid JSON'] };
    },
  },
  {
    name: 'truncated weights.bin',
    async arrange() {
      const modelDir = copyModel();
      const weights = path.join(modelDir, 'weights.bin');
      fs.truncateSync(weights, Math.floor(fs.statSync(weights).size / 2));
      return { env: { MODEL_DIR: modelDir }, expectedText: [weights, 'truncated'] };
    },
  },
  {
    name: 'missing weights.bin',
    async arrange() {
      const modelDir = copyModel();
      const weights = path.join(modelDir, 'weights.bin');
      fs.unlinkSync(weights);
      return { env: { MODEL_DIR: modelDir }, expectedText: [weights, 'is missing'] };
    },
  },
  {
    name: 'inputShape not matching the network',
    async arrange() {
      const modelDir = copyModel();
      editMetadata(modelDir, { inputShape: [null, 32, 32, 1] });
      return { env: { MODEL_DIR: modelDir }, expectedText: ['[null,32,32,1]', '[null,28,28,1]', 'inputShape'] };
    },
  },
  {
    name: 'unknown preprocessing value',
    async arrange() {
      const modelDir = copyModel();
      editMetadata(modelDir, { preprocessing: 'sobel-edges' });
      return { env: { MODEL_DIR: modelDir }, expectedText: [path.join(modelDir, 'metadata.json'), 'preprocessing', 'mnist-digit', '"sobel-edges"'] };
    },
  },
  {
    name: 'TF_BACKEND=node without tfjs-node',
    // The case needs a machine where the optional package is absent, as on machines whose install
    // could not download libtensorflow.
    skip: isTfjsNodeInstalled(),
    async arrange() {
      return { env: { TF_BACKEND: 'node' }, expectedText: ['TF_BACKEND=node', '@tensorflow/tfjs-node', 'npm install @tensorflow/tfjs-node'] };
    },
  },
  {
    name: 'PORT already in use',
    probePort: false,
    async arrange() {
      const port = await findFreePort();
      const holder = net.createServer((socket) => socket.destroy());
      portHolder = holder;
      await new Promise<void>((resolve, reject) => {
        holder.once('error', reject);
        holder.listen(port, '127.0.0.1', resolve);
      });
      return { env: { PORT: String(port) }, expectedText: [`127.0.0.1:${port}`, 'EADDRINUSE'] };
    },
  },
  {
    name: 'PORT not a number',
    probePort: false,
    async arrange() {
      return { env: { PORT: 'abc' }, expectedText: ['PORT="abc"', 'whole number'] };
    },
  },
  {
    name: 'LOG_DIR under a regular file',
    async arrange() {
      const file = path.join(scratchDirectory, 'not-a-directory');
      fs.writeFileSync(file, 'a regular file where LOG_DIR expects a directory\n');
      const logDir = path.join(file, 'logs');
      return { env: { LOG_DIR: logDir }, expectedText: [logDir, 'ENOTDIR', 'cannot be written'] };
    },
  },
  {
    name: 'app.log on a full disk',
    async arrange() {
      // The file opens, as on a full disk, but every write fails with ENOSPC.
      const logDir = path.join(scratchDirectory, 'full-disk-logs');
      fs.mkdirSync(logDir);
      fs.symlinkSync('/dev/full', path.join(logDir, 'app.log'));
      return { env: { LOG_DIR: logDir }, expectedText: [logDir, 'ENOSPC', 'cannot be written'] };
    },
  },
  {
    name: 'LOG_DIR under /dev/full',
    async arrange() {
      return { env: { LOG_DIR: '/dev/full/logs' }, expectedText: ['/dev/full/logs', 'cannot be written'] };
    },
  },
  {
    // /proc rejects mkdir of a new entry with ENOENT, which Node's recursive mkdirSync retried forever.
    name: 'LOG_DIR under /proc',
    skip: !HAS_PROC,
    async arrange() {
      return { env: { LOG_DIR: '/proc/inferline-logs' }, expectedText: ['/proc/inferline-logs', 'ENOENT', 'cannot be written'] };
    },
  },
  {
    name: 'DATABASE_PATH under /proc',
    skip: !HAS_PROC,
    async arrange() {
      return { env: { DATABASE_PATH: '/proc/inferline-data/app.db' }, expectedText: ['/proc/inferline-data', 'ENOENT', 'could not be opened'] };
    },
  },
];

/** Starts the server in the failing setup and checks that it exits 1 with one error line naming the cause. */
async function expectStartupFailure(failure: FailureCase, extraEnv: Record<string, string>): Promise<void> {
  const { env, expectedText } = await failure.arrange();

  const server: ServerProcess = await spawnServer({ ...extraEnv, ...env });
  const exitPromise = server.waitForExit();
  const accepted = failure.probePort === false ? 0 : await countAcceptedConnections(server.port, exitPromise);
  const exit = await exitPromise;

  const output = [...server.stdoutLines, ...server.stderrLines];
  const records = parseJsonLines(output);
  const errors = records.filter((record) => record.level === 'error');
  expect(exit).toEqual({ code: 1, signal: null });
  expect(accepted).toBe(0);
  expect(withMessage(records, 'server started')).toEqual([]);
  expect(output.filter((line) => !isJson(line))).toEqual([]);
  expect(errors).toHaveLength(1);
  const text = `${errors[0]?.message}: ${errors[0]?.error}`;
  for (const fragment of expectedText) expect(text).toContain(fragment);
}

describe('server startup failures', () => {
  for (const failure of cases) {
    const register = failure.skip ? test.skip : test;
    register(`${failure.name} exits with code 1`, () => expectStartupFailure(failure, {}), TEST_TIMEOUT_MS);
  }
});

// In a cluster the primary checks the configuration and opens the log file. The workers do the
// rest of the start, and the primary logs the first failure that a worker reports.
describe('cluster startup failures', () => {
  for (const failure of cases) {
    const register = failure.skip ? test.skip : test;
    register(`${failure.name} with WORKERS=2 exits with code 1`, () => expectStartupFailure(failure, { WORKERS: '2' }), TEST_TIMEOUT_MS);
  }
});
