import os from 'node:os';
import { z } from 'zod';
import { BACKEND_NAMES } from './backend';

const MB = 1024 * 1024;

const integer = (minimum: number, maximum = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `must be a whole number from ${minimum} to ${maximum}`)
    .transform(Number)
    .pipe(z.number().int().min(minimum, `must be at least ${minimum}`).max(maximum, `must be at most ${maximum}`));

// Caps WORKERS so that a typo cannot fork thousands of processes, each loading its own model.
const MAX_WORKERS = 256;

/** "auto" is one worker per core that Node reports as available to the process. */
const workerCount = z
  .string()
  .trim()
  .regex(/^(auto|\d+)$/, `must be "auto" or a whole number from 1 to ${MAX_WORKERS}`)
  .transform((value) => (value === 'auto' ? os.availableParallelism() : Number(value)))
  .pipe(z.number().int().min(1, 'must be at least 1').max(MAX_WORKERS, `must be at most ${MAX_WORKERS}`));

/**
 * Comma-separated origins allowed to call the API from another origin, each exactly as a browser
 * sends it in the `Origin` header: scheme, host and an optional port, without a path or a trailing
 * slash. Empty (the default) allows none, so only same-origin pages can read the responses.
 */
const originList = z
  .string()
  .transform((value, context) => {
    const origins = value
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry !== '');
    for (const origin of origins) {
      if (!isOrigin(origin)) {
        context.addIssue({
          code: 'custom',
          message: `${JSON.stringify(origin)} is not an origin. Write each as scheme://host[:port] in lower case, with no path, such as https://app.example.com`,
        });
      }
    }
    return origins;
  });

function isOrigin(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
}

/**
 * Every setting, read from an environment variable of the same name. The README's configuration
 * table lists the same defaults.
 */
const configSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: integer(0, 65535).default(3000),
  WORKERS: workerCount.default(1),
  MODEL_DIR: z.string().min(1).default('models/digits'),
  TF_BACKEND: z.enum(BACKEND_NAMES).optional(),
  DATABASE_PATH: z.string().min(1).default('data/app.db'),
  DATABASE_BUSY_TIMEOUT_MS: integer(0, 600_000).default(5000),
  LOG_DIR: z.string().min(1).default('logs'),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  LOG_CONSOLE: z.enum(['true', 'false']).default('true').transform((value) => value === 'true'),
  LOG_MAX_BYTES: integer(0).default(50 * MB),
  LOG_MAX_FILES: integer(1, 1000).default(5),
  UNIT_PRICE: integer(0).default(25),
  CURRENCY: z
    .string()
    .regex(/^[A-Z]{3}$/, 'must be a three-letter ISO 4217 code such as USD')
    .default('USD'),
  SYNC_MAX_ITEMS: integer(1).default(16),
  MAX_ITEMS: integer(1, 100_000).default(1000),
  MAX_IMAGE_BYTES: integer(1).default(5 * MB),
  MAX_IMAGE_PIXELS: integer(1).default(25_000_000),
  MAX_BODY_BYTES: integer(1).default(16 * MB),
  MAX_BATCH_SIZE: integer(1, 4096).default(32),
  MAX_BATCH_DELAY_MS: integer(0, 1000).default(0),
  MAX_QUEUED_INPUTS: integer(1, 1_000_000).default(4096),
  TASK_CHUNK_SIZE: integer(1, 1000).default(8),
  TASK_TTL_SECONDS: integer(1).default(86_400),
  SHUTDOWN_TIMEOUT_MS: integer(0, 3_600_000).default(10_000),
  CORS_ORIGINS: originList.default([]),
  WEB_DIR: z.string().min(1).default('dist/web'),
});

export type Config = Readonly<z.infer<typeof configSchema>>;

/** Raised when an environment variable has an invalid value; the message names it and the accepted values. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Reads the configuration from environment variables, validates it and freezes it. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const known = Object.fromEntries(
    Object.keys(configSchema.shape)
      .filter((key) => env[key] !== undefined && env[key] !== '')
      .map((key) => [key, env[key]]),
  );

  const parsed = configSchema.safeParse(known);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0]);
      return `${name}=${JSON.stringify(env[name])} is invalid: ${issue.message}`;
    });
    throw new ConfigError(problems.join('; '));
  }
  return Object.freeze(parsed.data);
}
