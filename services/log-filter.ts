/** Log levels of this service, most severe first. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A status code such as 404, or a class such as 5xx. */
export type StatusPattern = { code: number } | { statusClass: number };

/** Criteria for the log lines that `npm run logs` reads; a null criterion takes any line. */
export interface LogFilter {
  /** Milliseconds since the epoch; lines before it are left out. */
  since: number | null;
  /** Milliseconds since the epoch; lines after it are left out. */
  until: number | null;
  /** This level and the more severe ones. */
  level: LogLevel | null;
  requestId: string | null;
  status: StatusPattern[] | null;
  pathPrefix: string | null;
}

/** True when the filter selects lines by more than their time, so that they are listed, not summarised. */
export function selectsLines(filter: LogFilter): boolean {
  return filter.level !== null || filter.requestId !== null || filter.status !== null || filter.pathPrefix !== null;
}

/** Returns the time of a record in milliseconds since the epoch, or null when it has no valid `timestamp`. */
export function timeOf(record: Record<string, unknown>): number | null {
  if (typeof record.timestamp !== 'string') return null;
  const time = Date.parse(record.timestamp);
  return Number.isNaN(time) ? null : time;
}

/** True when the record falls in the filter's time range. Without a range, records without a time count too. */
export function isInTimeRange(record: Record<string, unknown>, filter: LogFilter): boolean {
  if (filter.since === null && filter.until === null) return true;
  const time = timeOf(record);
  if (time === null) return false;
  return (filter.since === null || time >= filter.since) && (filter.until === null || time <= filter.until);
}

function matchesStatus(status: unknown, patterns: StatusPattern[]): boolean {
  if (typeof status !== 'number') return false;
  return patterns.some((pattern) => ('code' in pattern ? status === pattern.code : Math.floor(status / 100) === pattern.statusClass));
}

/** True when the record passes every filter that is set, its time range included. */
export function matchesFilter(record: Record<string, unknown>, filter: LogFilter): boolean {
  if (!isInTimeRange(record, filter)) return false;
  if (filter.level !== null) {
    const rank = LOG_LEVELS.indexOf(record.level as LogLevel);
    if (rank === -1 || rank > LOG_LEVELS.indexOf(filter.level)) return false;
  }
  if (filter.requestId !== null && record.requestId !== filter.requestId) return false;
  if (filter.status !== null && !matchesStatus(record.status, filter.status)) return false;
  if (filter.pathPrefix !== null && !(typeof record.path === 'string' && record.path.startsWith(filter.pathPrefix))) return false;
  return true;
}

// Shown in their own places on a line, or (the stack) only with --json, because it spans many lines.
const LINE_FIELDS = new Set(['timestamp', 'level', 'message', 'method', 'path', 'route', 'status', 'durationMs', 'stack']);

function formatValue(value: unknown): string {
  if (typeof value === 'string' && /^[^\s"=]+$/.test(value)) return value;
  return JSON.stringify(value);
}

/**
 * Formats a record as one readable line: time, level, message, then for an access line the method,
 * path, status and duration, then every other field as key=value. The stack is left out.
 */
export function formatRecordLine(record: Record<string, unknown>): string {
  const parts = [String(record.timestamp ?? '-'), String(record.level ?? '-').toUpperCase().padEnd(5), String(record.message ?? '')];
  if (typeof record.method === 'string' && typeof record.path === 'string') parts.push(`${record.method} ${record.path}`);
  else if (typeof record.path === 'string') parts.push(record.path);
  if (record.status !== undefined) parts.push(String(record.status));
  if (typeof record.durationMs === 'number') parts.push(`${record.durationMs.toFixed(1)} ms`);

  for (const [key, value] of Object.entries(record)) {
    if (LINE_FIELDS.has(key) || value === undefined) continue;
    parts.push(`${key}=${formatValue(value)}`);
  }
  return parts.join('  ');
}
