import net from 'node:net';
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

/**
 * Express's `trust proxy` setting, which decides where `req.ip` comes from. With "false" (the
 * default) it is the connection's address, and with "true" the leftmost X-Forwarded-For entry.
 * With a number n it is the entry n proxies back. With a comma-separated list of addresses,
 * subnets or the names loopback, linklocal and uniquelocal, it is the entry before the first
 * proxy that is not in the list.
 */
const trustProxy = z
  .string()
  .trim()
  .transform((value, context): boolean | number | string => {
    if (value === 'true' || value === 'false') return value === 'true';
    if (/^\d+$/.test(value)) return Number(value);
    for (const entry of value.split(',').map((part) => part.trim())) {
      const problem = proxyEntryProblem(entry);
      if (problem) context.addIssue({ code: 'custom', message: problem });
    }
    return value;
  });

const PROXY_ADDRESS_FORMS = 'Write "true", "false", a hop count or a list such as 10.0.0.0/8,loopback';

/**
 * Describes why `entry` of a `trust proxy` list is invalid, or returns null. Express compiles the
 * list with proxy-addr (2.0.8), which throws on a prefix length of 0 or one longer than the address
 * (/32 for IPv4, /128 for IPv6). IPv4 netmasks such as /255.0.0.0, which proxy-addr also takes, are
 * rejected here.
 */
function proxyEntryProblem(entry: string): string | null {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) return null;

  const [address, prefix, ...rest] = entry.split('/');
  const version = net.isIP(address);
  if (rest.length > 0 || version === 0) {
    return `${JSON.stringify(entry)} is not an address, a subnet or one of loopback, linklocal, uniquelocal. ${PROXY_ADDRESS_FORMS}`;
  }
  if (prefix === undefined) return null;

  const maxPrefix = version === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) < 1 || Number(prefix) > maxPrefix) {
    return `${JSON.stringify(entry)} has an invalid prefix length: an IPv${version} subnet takes /1 to /${maxPrefix}. ${PROXY_ADDRESS_FORMS}`;
  }
  return null;
}

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
  TRUST_PROXY: trustProxy.default(false),
  // Requests per client and window, counted separately for each route group.
  SIGN_UP_RATE_LIMIT: integer(1).default(20),
  SIGN_UP_RATE_WINDOW_SECONDS: integer(1, 86_400).default(3600),
  PREDICT_RATE_LIMIT: integer(1).default(600),
  PREDICT_RATE_WINDOW_SECONDS: integer(1, 86_400).default(60),
  ORDER_RATE_LIMIT: integer(1).default(120),
  ORDER_RATE_WINDOW_SECONDS: integer(1, 86_400).default(60),
  INFER_RATE_LIMIT: integer(1).default(600),
  INFER_RATE_WINDOW_SECONDS: integer(1, 86_400).default(60),
  TASK_QUEUE_MAX: integer(1).default(1000),
  HEADERS_TIMEOUT_MS: integer(1000, 600_000).default(20_000),
  REQUEST_TIMEOUT_MS: integer(1000, 3_600_000).default(120_000),
  JSON_MAX_DEPTH: integer(2, 1000).default(32),
  JSON_MAX_KEYS: integer(1).default(10_000),
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

/**
 * Checks that HEADERS_TIMEOUT_MS is at most REQUEST_TIMEOUT_MS, as Node's HTTP server requires. The
 * issue names the variable that was set, or HEADERS_TIMEOUT_MS when both were.
 */
function checkTimeouts(config: z.infer<typeof configSchema>, known: Record<string, unknown>, context: z.RefinementCtx): void {
  const headersMs = config.HEADERS_TIMEOUT_MS;
  const requestMs = config.REQUEST_TIMEOUT_MS;
  if (headersMs <= requestMs) return;

  if (known.HEADERS_TIMEOUT_MS === undefined) {
    context.addIssue({
      code: 'custom',
      path: ['REQUEST_TIMEOUT_MS'],
      message: `must not be less than HEADERS_TIMEOUT_MS (${headersMs}, its default). Set REQUEST_TIMEOUT_MS to at least ${headersMs}, or HEADERS_TIMEOUT_MS to at most ${requestMs}`,
    });
    return;
  }
  const requestSource = known.REQUEST_TIMEOUT_MS === undefined ? ', its default' : '';
  context.addIssue({
    code: 'custom',
    path: ['HEADERS_TIMEOUT_MS'],
    message: `must not be more than REQUEST_TIMEOUT_MS (${requestMs}${requestSource}). Set HEADERS_TIMEOUT_MS to at most ${requestMs}, or REQUEST_TIMEOUT_MS to at least ${headersMs}`,
  });
}

/** Reads the configuration from environment variables, validates it and freezes it. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const known = Object.fromEntries(
    Object.keys(configSchema.shape)
      .filter((key) => env[key] !== undefined && env[key] !== '')
      .map((key) => [key, env[key]]),
  );

  const parsed = configSchema.superRefine((config, context) => checkTimeouts(config, known, context)).safeParse(known);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0]);
      const setting = known[name] === undefined ? `${name} (not set)` : `${name}=${JSON.stringify(env[name])}`;
      return `${setting} is invalid: ${issue.message}`;
    });
    throw new ConfigError(problems.join('; '));
  }
  return Object.freeze(parsed.data);
}
