import type { LogEntry, LogReadIssue } from './log-reader';
import { timeOf } from './log-filter';

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const NUMBER = /\b\d+(?:\.\d+)?\b/g;

export interface RouteDurations {
  method: string;
  route: string;
  count: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface ErrorGroup {
  /** The message, with ids replaced by :id and numbers by N, so that one kind of error makes one group. */
  message: string;
  count: number;
  firstTime: string | null;
  lastTime: string | null;
  /** The first error of the group as it was logged. */
  example: string;
}

/** A `shutdown complete` line: its time and the counts the service logged. */
export interface ShutdownSummary {
  time: string | null;
  signal: unknown;
  forced: unknown;
  uptimeMs: unknown;
  requestsServed: unknown;
  tasksSucceeded: unknown;
  tasksFailed: unknown;
  tasksCancelled: unknown;
  /** Tasks that this shutdown interrupted between two chunks: the `task interrupted by the shutdown` lines since the start. */
  tasksInterrupted: number;
  /** Tasks unfinished (queued or running) when the service stopped, all queued for the next start, the interrupted ones included. */
  tasksLeftQueued: unknown;
  workers: unknown;
}

/** The report that `npm run logs` prints without line filters. */
export interface LogSummary {
  files: { file: string; lines: number }[];
  skippedLines: LogReadIssue[];
  firstTime: string | null;
  lastTime: string | null;
  records: number;
  levels: Record<string, number>;
  requests: { total: number; aborted: number; byStatusClass: Record<string, number> };
  /** Routes by request count, most first. */
  routes: RouteDurations[];
  /** Error groups by count, most first. */
  errors: ErrorGroup[];
  /** Task lines by outcome. `interrupted` counts tasks that a shutdown stopped and requeued. */
  tasks: TaskCounts;
  /**
   * `server started` lines. `withoutShutdownSummary` counts starts followed by another start with no
   * `shutdown complete` between them, as a crash or kill -9 leaves them. `lastStillOpen` is true when
   * no summary follows the last start: the service still runs, or it stopped without one.
   */
  starts: { count: number; withoutShutdownSummary: number; lastStillOpen: boolean };
  shutdowns: ShutdownSummary[];
}

export interface TaskCounts {
  started: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  interrupted: number;
}

const TASK_MESSAGES: Record<string, keyof TaskCounts> = {
  'task started': 'started',
  'task succeeded': 'succeeded',
  'task failed': 'failed',
  'task cancelled': 'cancelled',
  'task interrupted by the shutdown; requeued': 'interrupted',
  // The same event in logs written before the message was renamed.
  'task left queued for the next start': 'interrupted',
};

/** Turns a request path into its route: UUID segments become :id, so `/orders/7f3e…/bill` is `/orders/:id/bill`. */
export function routeOf(path: string): string {
  return path.replace(UUID, ':id');
}

/** Returns the value at `share` (0..1) of ascending `sorted` values by the nearest-rank method. */
export function nearestRank(sorted: ArrayLike<number>, share: number): number {
  const rank = Math.max(1, Math.ceil(share * sorted.length));
  return sorted[rank - 1];
}

function errorKey(record: Record<string, unknown>): { key: string; text: string } {
  const message = String(record.message ?? '');
  const text = typeof record.error === 'string' ? `${message}: ${record.error}` : message;
  return { key: text.replace(UUID, ':id').replace(NUMBER, 'N'), text };
}

/**
 * Builds a LogSummary from log entries added one at a time, in the order of the log, so that
 * logs larger than memory can be summarised. Request durations are kept per route for the
 * percentiles: 8 bytes per access line.
 */
export class LogSummarizer {
  private readonly files = new Map<string, number>();
  private readonly skippedLines: LogReadIssue[] = [];
  private firstTime: string | null = null;
  private lastTime: string | null = null;
  private records = 0;
  private readonly levels: Record<string, number> = {};
  private readonly requests = { total: 0, aborted: 0, byStatusClass: {} as Record<string, number> };
  private readonly durations = new Map<string, { method: string; route: string; values: number[] }>();
  private readonly errors = new Map<string, ErrorGroup>();
  private readonly tasks: TaskCounts = { started: 0, succeeded: 0, failed: 0, cancelled: 0, interrupted: 0 };
  private readonly starts = { count: 0, withoutShutdownSummary: 0 };
  private runOpen = false;
  /** Tasks interrupted since the last `server starting` or `shutdown complete` line. */
  private tasksInterruptedInRun = 0;
  private readonly shutdowns: ShutdownSummary[] = [];

  /** Records that `file` was read up to `line`, so that files without a matching line are listed too. */
  noteLine(file: string, line: number): void {
    this.files.set(file, Math.max(this.files.get(file) ?? 0, line));
  }

  noteIssue(issue: LogReadIssue): void {
    this.skippedLines.push(issue);
    this.noteLine(issue.file, issue.line);
  }

  add(entry: LogEntry): void {
    const { record } = entry;
    this.noteLine(entry.file, entry.line);
    this.records++;
    const level = String(record.level ?? 'none');
    this.levels[level] = (this.levels[level] ?? 0) + 1;
    const time = typeof record.timestamp === 'string' && timeOf(record) !== null ? record.timestamp : null;
    if (time !== null) {
      if (this.firstTime === null || time < this.firstTime) this.firstTime = time;
      if (this.lastTime === null || time > this.lastTime) this.lastTime = time;
    }

    if (record.message === 'request completed') this.addRequest(record);
    if (record.level === 'error') this.addError(record, time);
    const taskOutcome = TASK_MESSAGES[String(record.message)];
    if (taskOutcome) this.tasks[taskOutcome]++;
    if (taskOutcome === 'interrupted') this.tasksInterruptedInRun++;
    if (record.message === 'server starting') this.tasksInterruptedInRun = 0;
    if (record.message === 'server started') this.addStart();
    if (record.message === 'shutdown complete') this.addShutdown(record, time);
  }

  finish(): LogSummary {
    const routes = [...this.durations.values()]
      .map(({ method, route, values }) => {
        // A typed array sorts numerically, and faster than an array with a comparator.
        const sorted = Float64Array.from(values).sort();
        return {
          method,
          route,
          count: sorted.length,
          p50Ms: nearestRank(sorted, 0.5),
          p95Ms: nearestRank(sorted, 0.95),
          p99Ms: nearestRank(sorted, 0.99),
          maxMs: sorted[sorted.length - 1],
        };
      })
      .sort((a, b) => b.count - a.count || a.route.localeCompare(b.route));

    return {
      files: [...this.files.entries()].map(([file, lines]) => ({ file, lines })),
      skippedLines: this.skippedLines,
      firstTime: this.firstTime,
      lastTime: this.lastTime,
      records: this.records,
      levels: this.levels,
      requests: this.requests,
      routes,
      errors: [...this.errors.values()].sort((a, b) => b.count - a.count),
      tasks: this.tasks,
      starts: { ...this.starts, lastStillOpen: this.runOpen },
      shutdowns: this.shutdowns,
    };
  }

  private addRequest(record: Record<string, unknown>): void {
    if (typeof record.status !== 'number') return;
    this.requests.total++;
    if (record.aborted === true) this.requests.aborted++;
    const statusClass = `${Math.floor(record.status / 100)}xx`;
    this.requests.byStatusClass[statusClass] = (this.requests.byStatusClass[statusClass] ?? 0) + 1;

    if (typeof record.durationMs !== 'number' || typeof record.path !== 'string') return;
    const method = String(record.method ?? '-');
    // Access lines carry the route template; older lines have only the path.
    const route = typeof record.route === 'string' ? record.route : routeOf(record.path);
    const key = `${method} ${route}`;
    let durations = this.durations.get(key);
    if (!durations) {
      durations = { method, route, values: [] };
      this.durations.set(key, durations);
    }
    durations.values.push(record.durationMs);
  }

  private addError(record: Record<string, unknown>, time: string | null): void {
    const { key, text } = errorKey(record);
    const group = this.errors.get(key);
    if (!group) {
      this.errors.set(key, { message: key, count: 1, firstTime: time, lastTime: time, example: text });
      return;
    }
    group.count++;
    if (time !== null) {
      if (group.firstTime === null || time < group.firstTime) group.firstTime = time;
      if (group.lastTime === null || time > group.lastTime) group.lastTime = time;
    }
  }

  private addStart(): void {
    if (this.runOpen) this.starts.withoutShutdownSummary++;
    this.starts.count++;
    this.runOpen = true;
  }

  private addShutdown(record: Record<string, unknown>, time: string | null): void {
    this.runOpen = false;
    const tasksInterrupted = this.tasksInterruptedInRun;
    this.tasksInterruptedInRun = 0;
    this.shutdowns.push({
      time,
      signal: record.signal,
      forced: record.forced,
      uptimeMs: record.uptimeMs,
      requestsServed: record.requestsServed,
      tasksSucceeded: record.tasksSucceeded,
      tasksFailed: record.tasksFailed,
      tasksCancelled: record.tasksCancelled,
      tasksInterrupted,
      tasksLeftQueued: record.tasksLeftQueued,
      workers: record.workers,
    });
  }
}
