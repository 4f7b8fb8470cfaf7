import path from 'node:path';
import winston from 'winston';
import { LogFile } from './log-file';
import { requestContext } from './request-context';

export interface LoggerOptions {
  level: string;
  /** Directory of `app.log`; no file is written when it is null. */
  logDir: string | null;
  console: boolean;
}

export interface AppLogger {
  logger: winston.Logger;
  /** Path of the log file, or null when logging only to the console. */
  filePath: string | null;
  /** Flushes every line to the log file and closes it. */
  close(): Promise<void>;
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

/** Creates the JSON-lines logger: one object a line, to the console and to `LOG_DIR/app.log`. */
export function createLogger(options: LoggerOptions): AppLogger {
  const format = winston.format.combine(
    winston.format.timestamp(),
    addRequestContext(),
    winston.format.errors({ stack: true }),
    winston.format.json(),
  );

  const transports: winston.transport[] = [];
  let file: LogFile | null = null;
  if (options.logDir !== null) {
    file = new LogFile(path.join(options.logDir, 'app.log'));
    transports.push(file);
  }
  if (options.console) transports.push(new winston.transports.Console());
  if (transports.length === 0) transports.push(new winston.transports.Console({ silent: true }));

  const logger = winston.createLogger({ level: options.level, format, transports, exitOnError: false });
  return {
    logger,
    filePath: file?.filePath ?? null,
    close: () => file?.closeFile() ?? Promise.resolve(),
  };
}

/** Turns a caught value into log fields; winston's JSON format would print an Error as `{}`. */
export function errorFields(error: unknown): { error: string; stack?: string } {
  if (error instanceof Error) return { error: error.message, stack: error.stack };
  return { error: String(error) };
}
