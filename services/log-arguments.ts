import { parseArgs } from 'node:util';
import { LOG_LEVELS, LogFilter, LogLevel, StatusPattern } from './log-filter';

export const LOGS_USAGE = `Usage: npm run logs -- [FILE|DIR] [options]

Reads the service's JSON-lines log and prints a summary: time span, requests by status class,
p50/p95/p99 duration per route, errors grouped by message, task outcomes and each shutdown summary.
With --level, --request-id, --status or --path it prints the matching lines instead, one per line.

FILE|DIR            a log file (plain or gzipped), or a directory whose app.log and rotated
                    app.log.N[.gz] files are read oldest first; default: $LOG_DIR, else logs
--since TIME        leave out lines before TIME
--until TIME        leave out lines after TIME
                    TIME is an ISO 8601 date or time such as 2026-12-04 or 2026-12-04T10:00:00Z
                    (UTC unless it has an offset), or a duration before now: 30s, 15m, 2h or 7d
--level LEVEL       lines of LEVEL or more severe: error, warn, info or debug
--request-id ID     lines of one request
--status LIST       access lines whose status matches: codes or classes, comma-separated,
                    such as 5xx or 404,429
--path PREFIX       access lines whose path starts with PREFIX, such as /orders
--json              print the summary as one JSON object, or the matching lines as JSON lines
-h, --help          print this help

Lines that are not JSON, such as a last line cut off by a crash, are skipped and reported with
their file and line number. Use npm run -s logs to keep npm's own lines out of the output.`;

/** Raised for an invalid command line; the message names the argument and its accepted form. */
export class LogArgumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LogArgumentError';
  }
}

export interface LogQuery {
  target: string;
  filter: LogFilter;
  json: boolean;
  help: boolean;
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/;
const DURATION = /^(\d+)(s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const STATUS_PATTERN = /^(?:([1-5])xx|([1-5]\d\d))$/;

/** Parses a TIME argument into milliseconds since the epoch. */
export function parseTime(option: string, value: string, now: number): number {
  const duration = DURATION.exec(value);
  if (duration) return now - Number(duration[1]) * DURATION_MS[duration[2]];

  const iso = ISO_TIME.exec(value);
  let time = NaN;
  if (iso) {
    // Date.parse reads a date alone as UTC but a date and time without an offset as local time.
    // The log's timestamps are UTC, so a time without an offset is read as UTC too.
    const hasTimeWithoutOffset = value.includes('T') && iso[1] === undefined;
    time = Date.parse(hasTimeWithoutOffset ? `${value}Z` : value);
  }
  if (Number.isNaN(time)) {
    throw new LogArgumentError(
      `${option} ${JSON.stringify(value)} is invalid: expected an ISO 8601 date or time such as 2026-12-04 or ` +
        '2026-12-04T10:00:00Z (UTC unless it has an offset), or a duration before now such as 30s, 15m, 2h or 7d',
    );
  }
  return time;
}

/** Parses a --status LIST argument. */
export function parseStatusList(value: string): StatusPattern[] {
  return value.split(',').map((entry) => {
    const match = STATUS_PATTERN.exec(entry.trim());
    if (!match) {
      throw new LogArgumentError(
        `--status ${JSON.stringify(value)} is invalid: expected status codes or classes separated by commas, such as 5xx or 404,429`,
      );
    }
    return match[1] !== undefined ? { statusClass: Number(match[1]) } : { code: Number(match[2]) };
  });
}

function parseLevel(value: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new LogArgumentError(`--level ${JSON.stringify(value)} is invalid: expected one of ${LOG_LEVELS.join(', ')}`);
  }
  return value as LogLevel;
}

function parsePathPrefix(value: string): string {
  if (!value.startsWith('/')) throw new LogArgumentError(`--path ${JSON.stringify(value)} is invalid: expected a path that starts with /, such as /orders`);
  return value;
}

function parseRequestId(value: string): string {
  if (value.trim() === '') throw new LogArgumentError('--request-id is empty: expected the id of a request, as in its X-Request-Id header');
  return value;
}

/**
 * Parses the arguments of `npm run logs`. `now` anchors durations such as 2h, and `defaultTarget`
 * is read when no FILE|DIR is given. Throws LogArgumentError for anything invalid.
 */
export function parseLogArguments(args: string[], options: { now: number; defaultTarget: string }): LogQuery {
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(args);
  } catch (error) {
    throw new LogArgumentError(describeCommandLineError(error as Error & { code?: string }));
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) {
    throw new LogArgumentError(`FILE|DIR: expected one log file or directory, got ${positionals.length}: ${positionals.join(' ')}`);
  }

  const since = values.since === undefined ? null : parseTime('--since', values.since, options.now);
  const until = values.until === undefined ? null : parseTime('--until', values.until, options.now);
  if (since !== null && until !== null && since > until) {
    throw new LogArgumentError(`--since ${values.since} is after --until ${values.until}: expected a range whose start comes first`);
  }

  return {
    target: positionals[0] ?? options.defaultTarget,
    filter: {
      since,
      until,
      level: values.level === undefined ? null : parseLevel(values.level),
      requestId: values['request-id'] === undefined ? null : parseRequestId(values['request-id']),
      status: values.status === undefined ? null : parseStatusList(values.status),
      pathPrefix: values.path === undefined ? null : parsePathPrefix(values.path),
    },
    json: values.json ?? false,
    help: values.help ?? false,
  };
}

const OPTION_FORMS: Record<string, string> = {
  '--since': '--since TIME',
  '--until': '--until TIME',
  '--level': '--level LEVEL',
  '--request-id': '--request-id ID',
  '--status': '--status LIST',
  '--path': '--path PREFIX',
  '--json': '--json',
  '--help': '--help',
};

/** Rewords an error of node:util's parseArgs, whose message names the option in quotes. */
function describeCommandLineError(error: Error & { code?: string }): string {
  const option = /'(-[^' ]+)/.exec(error.message)?.[1] ?? '';
  const form = OPTION_FORMS[option] ?? option;
  if (error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown option ${option}: expected one of ${Object.values(OPTION_FORMS).join(', ')}`;
  if (error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && error.message.includes('argument missing')) return `${option} is missing its value: expected ${form}`;
  if (error.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return `${option} takes no value: expected ${form} alone`;
  return `${error.message}. Run npm run logs -- --help for the accepted arguments`;
}

function parseCommandLine(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      since: { type: 'string' },
      until: { type: 'string' },
      level: { type: 'string' },
      'request-id': { type: 'string' },
      status: { type: 'string' },
      path: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
