import type { AppLogger } from './logger';
import { errorFields } from './logger';

/** Logs a fatal error, flushes the log and exits with code 1. */
export async function exitWithError(log: AppLogger | null, message: string, error: unknown): Promise<never> {
  if (log) {
    log.logger.error(message, errorFields(error));
    await log.close().catch(() => undefined);
  } else {
    // The logger itself could not start, so write the one JSON line by hand.
    // A configuration error's message names the variable and the fix, and its stack would only point into this file.
    const fields = error instanceof Error && error.name === 'ConfigError' ? { error: error.message } : errorFields(error);
    process.stderr.write(`${JSON.stringify({ level: 'error', message, ...fields, timestamp: new Date().toISOString() })}\n`);
  }
  process.exit(1);
}
