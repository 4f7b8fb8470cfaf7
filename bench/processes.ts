/**
 * Starting, checking and stopping the processes that the benchmark measures, each pinned to its
 * CPU cores with taskset when the machine has it.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 15_000;
const CHILD_EXIT_GRACE_MS = 5_000;
const OUTPUT_TAIL_BYTES = 4000;

/** Core placement of the load generator and the servers. */
export interface Pinning {
  /** False when taskset is missing or the machine has one core: then nothing is pinned. */
  enabled: boolean;
  reason: string;
  loadGeneratorCpus: string;
  /** Cores of a server with `processes` busy processes (1 for everything but WORKERS=2). */
  serverCpus(processes: number): string;
  /** True when a server with `processes` processes shares a core with the load generator. */
  sharesLoadGeneratorCore(processes: number): boolean;
}

/**
 * Plans the pinning: the load generator on core 0, a one-process server on core 1, and an
 * n-process server on cores 1..n, or on every core (with the load generator) when there are too few.
 */
export function planPinning(): Pinning {
  const cores = os.cpus().length;
  const hasTaskset = commandExists('taskset');
  const enabled = hasTaskset && cores >= 2;
  let reason = 'taskset';
  if (!hasTaskset) reason = 'taskset not found, so nothing is pinned';
  else if (cores < 2) reason = 'one core, so nothing is pinned';
  const fitsBesideLoad = (processes: number) => processes + 1 <= cores;
  return {
    enabled,
    reason,
    loadGeneratorCpus: enabled ? '0' : 'any',
    serverCpus(processes) {
      if (!enabled) return 'any';
      if (fitsBesideLoad(processes)) return processes === 1 ? '1' : `1-${processes}`;
      return `0-${cores - 1}`;
    },
    sharesLoadGeneratorCore(processes) {
      return !enabled || !fitsBesideLoad(processes);
    },
  };
}

/** Pins this process, with all its threads, to the load generator's cores. */
export function pinLoadGenerator(pinning: Pinning): void {
  if (!pinning.enabled) return;
  execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', pinning.loadGeneratorCpus, String(process.pid)], { stdio: 'ignore' });
}

export function commandExists(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export interface StartOptions {
  /** Short name for messages, e.g. "inferline WORKERS=2". */
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  /** taskset CPU list, or "any". */
  cpus: string;
  /** Opens an IPC channel to the child. */
  ipc?: boolean;
}

/** A started child process whose output goes to a file, so that reading it costs the load generator nothing. */
export interface BenchProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  outputPath: string;
  /** The last lines the process wrote to stdout and stderr. */
  outputTail(): string;
}

const liveProcesses = new Set<BenchProcess>();

/** Spawns a process with `taskset --cpu-list` (which execs the command, so the pid stays the command's). */
export function startProcess(options: StartOptions, outputDirectory: string): BenchProcess {
  const outputPath = path.join(outputDirectory, `${options.name.replace(/[^\w.-]+/g, '-')}-${Date.now()}.out`);
  const output = fs.openSync(outputPath, 'a');
  const [command, args] =
    options.cpus === 'any' ? [options.command, options.args] : ['taskset', ['--cpu-list', options.cpus, options.command, ...options.args]];
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: options.ipc ? ['ignore', output, output, 'ipc'] : ['ignore', output, output],
  });
  fs.closeSync(output);
  if (child.pid === undefined) throw new Error(`${options.name} could not be started: ${command} ${args.join(' ')}`);

  const started: BenchProcess = {
    name: options.name,
    child,
    pid: child.pid,
    outputPath,
    outputTail() {
      const text = fs.readFileSync(outputPath, 'utf8');
      return text.slice(-OUTPUT_TAIL_BYTES);
    },
  };
  liveProcesses.add(started);
  child.once('exit', () => liveProcesses.delete(started));
  return started;
}

/** Resolves with the exit code once the process has exited; rejects after `timeoutMs`. */
export function waitForExit(target: BenchProcess, timeoutMs: number): Promise<number | null> {
  if (hasExited(target.child)) return Promise.resolve(target.child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${target.name} did not finish within ${timeoutMs} ms\n${target.outputTail()}`)), timeoutMs);
    target.child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * Sends `body` to POST `url` until it returns 200, and returns the parsed response. Throws when the
 * process exits first or after READY_TIMEOUT_MS, with the end of its output.
 */
export async function waitUntilServing(target: BenchProcess, url: string, body: string): Promise<unknown> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastProblem = 'no response yet';
  while (Date.now() < deadline) {
    if (hasExited(target.child)) {
      throw new Error(`${target.name} exited with code ${target.child.exitCode} before serving\n${target.outputTail()}`);
    }
    try {
      const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      const text = await response.text();
      if (response.status === 200) return JSON.parse(text) as unknown;
      lastProblem = `status ${response.status}: ${text.slice(0, 300)}`;
    } catch (error) {
      lastProblem = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${target.name} did not serve POST ${url} within ${READY_TIMEOUT_MS} ms (${lastProblem})\n${target.outputTail()}`);
}

/** True while `pid` runs; a zombie (exited, not yet reaped) counts as ended. */
function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Stops a process with SIGTERM, and with SIGKILL when it is still running after STOP_TIMEOUT_MS.
 * Processes it had started (cluster workers) that outlive it by CHILD_EXIT_GRACE_MS get SIGKILL too,
 * so that no worker keeps a core busy during the next measurement.
 */
export async function stopProcess(target: BenchProcess): Promise<void> {
  if (hasExited(target.child)) return;
  const children = listDescendants(target.pid) ?? [];
  const exited = new Promise<void>((resolve) => target.child.once('exit', () => resolve()));
  target.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (!hasExited(target.child)) target.child.kill('SIGKILL');
  }, STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);

  const deadline = Date.now() + CHILD_EXIT_GRACE_MS;
  while (children.some(isAlive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  for (const pid of children.filter(isAlive)) process.kill(pid, 'SIGKILL');
}

/** Stops every process that startProcess started and that is still running. */
export async function stopAllProcesses(): Promise<void> {
  await Promise.all([...liveProcesses].map(stopProcess));
}

/** Lists the live processes below `pid` (the cluster workers of a server), from /proc; null without /proc. */
export function listDescendants(pid: number): number[] | null {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return null;
  }

  const parentOf = new Map<number, number>();
  for (const entry of entries) {
    try {
      // Field 4 of /proc/PID/stat is the parent pid; the command name before it may contain spaces.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(entry), Number(fields[1]));
    } catch {
      // The process ended while the list was read.
    }
  }

  const descendants: number[] = [];
  for (const candidate of parentOf.keys()) {
    let ancestor = parentOf.get(candidate);
    while (ancestor !== undefined && ancestor > 1) {
      if (ancestor === pid) {
        descendants.push(candidate);
        break;
      }
      ancestor = parentOf.get(ancestor);
    }
  }
  return descendants;
}

/** Returns the resident set size of `pid` and the processes below it, from /proc; null without /proc. */
export function treeRssBytes(pid: number): number | null {
  const descendants = listDescendants(pid);
  if (descendants === null) return null;
  let total = 0;
  for (const member of [pid, ...descendants]) {
    try {
      const status = fs.readFileSync(`/proc/${member}/status`, 'utf8');
      const kilobytes = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
      if (kilobytes !== undefined) total += Number(kilobytes) * 1024;
    } catch {
      // The process ended while it was read.
    }
  }
  return total;
}
