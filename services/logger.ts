import path from 'node:path';
import winston from 'winston';
import type { Config } from './config';
import { IpcLogTransport } from './ipc-log-transport';
import { LogFile, LogRotation } from './log-file';
import { requestContext } from './request-context';

const LEVEL = Symbol.for('level');
const MESSAGE = Symbol.for('message');
// Marks a line that a cluster worker has already formatted and filtered, for the primary to write unchanged.
const FORWARDED_LINE = Symbol('forwardedLine');
// Marks a record that is written at any LOG_LEVEL. A symbol key never reaches the JSON output.
const LIFECYCLE_EVENT = Symbol('lifecycleEvent');
// Winston's transports drop lines below the logger's level, so that level is the most detailed one
// of this service. filterByLevel applies LOG_LEVEL instead, and lets lifecycle events through.
const FULL_DETAIL_LEVEL = 'debug';

export interface LoggerOptions {
  level: string;
  /** Directory of `app.log`; no file is written when it is null. */
  logDir: string | null;
  /** When `app.log` rotates; without it, the file only grows. */
  rotation?: LogRotation;
  console: boolean;
  /** For cluster workers: send every line to the primary, which writes it, instead of the file and the console. */
  sendToPrimary?: boolean;
  /** Fields added to every line, such as a worker's id and pid. */
  defaultMeta?: Record<string, unknown>;
}

export interface AppLogger {
  logger: winston.Logger;
  /** Path of the log file, or null when logging only to the console or to the primary. */
  filePath: string | null;
  /** The channel to the primary when `sendToPrimary` was set, else null. */
  ipc: IpcLogTransport | null;
  /** Flushes every line to the log file, or to the primary, and closes the file. */
  close(): Promise<void>;
  /** Writes the lines logged so far to the log file at once; throws when that fails. */
  writeFileNow(): void;
  /** Reopens the log file when another tool moved, deleted or replaced it, as on SIGHUP. */
  reopenFile(): void;
}

// Adds the ids of the request being handled, so every line written during a request carries them.
const addRequestContext = winston.format((info) => {
  const context = requestContext.getStore();
  if (context) {
    info.requestId ??= context.requestId;
    if (context.userId !== undefined) info.userId ??= context.userId;
  }
  return info;
});

/**
 * Drops records below `level`, except lifecycle events. Placed first, it also spares dropped
 * records the formatting, which winston would otherwise do before its transports drop them.
 */
function filterByLevel(level: string): winston.Logform.Format {
  const levels = winston.config.npm.levels;
  const maxPriority = levels[level];
  if (maxPriority === undefined) throw new Error(`log level ${JSON.stringify(level)} is invalid: expected one of ${Object.keys(levels).join(', ')}`);
  return winston.format((info) => {
    const record = info as Record<symbol, unknown>;
    return levels[record[LEVEL] as string] <= maxPriority || record[LIFECYCLE_EVENT] === true ? info : false;
  })();
}

// Formats a line with `format`, unless it is a forwarded line, which is already formatted.
function keepForwardedLines(format: winston.Logform.Format): winston.Logform.Format {
  return {
    transform(info, options) {
      const line = (info as Record<symbol, unknown>)[FORWARDED_LINE];
      if (typeof line !== 'string') return format.transform(info, options);
      (info as Record<symbol, unknown>)[MESSAGE] = line;
      return info;
    },
  };
}

/**
 * Creates the JSON-lines logger: one object a line, to the console and to `LOG_DIR/app.log`, or,
 * in a cluster worker, to the primary.
 */
export function createLogger(options: LoggerOptions): AppLogger {
  const format = keepForwardedLines(
    winston.format.combine(
      filterByLevel(options.level),
      winston.format.timestamp(),
      addRequestContext(),
      winston.format.errors({ stack: true }),
      winston.format.json(),
    ),
  );

  const transports: winston.transport[] = [];
  let file: LogFile | null = null;
  let ipc: IpcLogTransport | null = null;
  if (options.sendToPrimary) {
    ipc = new IpcLogTransport();
    transports.push(ipc);
  } else {
    if (options.logDir !== null) {
      file = new LogFile(path.join(options.logDir, 'app.log'), { rotation: options.rotation });
      transports.push(file);
    }
    if (options.console) transports.push(new winston.transports.Console());
  }
  if (transports.length === 0) transports.push(new winston.transports.Console({ silent: true }));

  const logger = winston.createLogger({ level: FULL_DETAIL_LEVEL, format, transports, exitOnError: false, defaultMeta: options.defaultMeta });
  return {
    logger,
    filePath: file?.filePath ?? null,
    ipc,
    close: () => ipc?.flush() ?? file?.closeFile() ?? Promise.resolve(),
    writeFileNow: () => file?.writeNow(),
    reopenFile: () => file?.reopenIfMoved(),
  };
}

/**
 * Logs a start or a stop of the service or of a worker at info, whatever LOG_LEVEL is, so that
 * every run in the log has its `server started` line and, after a clean stop, its summary.
 */
export function logLifecycleEvent(logger: winston.Logger, message: string, fields: Record<string, unknown> = {}): void {
  logger.info(message, { ...fields, [LIFECYCLE_EVENT]: true });
}

/**
 * Creates the logger of the process that writes LOG_DIR/app.log (the single process, or the cluster
 * primary) and writes its first line, `server starting`, at once. A destination that cannot be
 * written throws here, before the server takes any request. That line is a lifecycle event, so
 * this check runs at every LOG_LEVEL.
 */
export function createFileLogger(config: Config, details: Record<string, unknown>): AppLogger {
  const log = createLogger({
    level: config.LOG_LEVEL,
    logDir: config.LOG_DIR,
    console: config.LOG_CONSOLE,
    rotation: { maxBytes: config.LOG_MAX_BYTES, maxFiles: config.LOG_MAX_FILES },
  });
  logLifecycleEvent(log.logger, 'server starting', { pid: process.pid, node: process.version, ...details });
  log.writeFileNow();
  return log;
}

/**
 * Writes a line that a worker formatted, unchanged, through the same transports and in the same
 * order as this logger's own lines. The worker has already applied LOG_LEVEL, and let its
 * lifecycle events through, so the line is not filtered again.
 */
export function writeForwardedLine(logger: winston.Logger, level: string, line: string): void {
  logger.log({ level, message: '', [FORWARDED_LINE]: line });
}

/** Turns a caught value into log fields; winston's JSON format would print an Error as `{}`. */
export function errorFields(error: unknown): { error: string; stack?: string } {
  if (error instanceof Error) return { error: error.message, stack: error.stack };
  return { error: String(error) };
}
