import type { RequestHandler } from 'express';
import createError from 'http-errors';
import type { Config } from '../services/config';

export interface JsonLimits {
  /** Maximum nesting of objects and arrays; the top-level value is depth 1 (JSON_MAX_DEPTH). */
  maxDepth: number;
  /** Maximum number of object keys in the whole body (JSON_MAX_KEYS). */
  maxKeys: number;
}

/** Returns the JSON_MAX_DEPTH and JSON_MAX_KEYS limits of `config`. */
export function jsonLimitsOf(config: Config): JsonLimits {
  return { maxDepth: config.JSON_MAX_DEPTH, maxKeys: config.JSON_MAX_KEYS };
}

/**
 * Rejects a parsed JSON body that is nested deeper than `maxDepth` or has more than `maxKeys`
 * object keys in all, with 413. The routes validate bodies with zod and walk tensors, so a body
 * of thousands of keys or nested arrays would make that work large, and this check stops it first. It walks the parsed value once, with its own stack so that depth cannot overflow the
 * call stack, and skips numbers and strings at once, so a body of pixel arrays costs one pass over
 * its numbers.
 */
export function checkJsonShape(body: unknown, limits: JsonLimits): void {
  if (typeof body !== 'object' || body === null) return;

  let keys = 0;
  const pending: { value: object; depth: number }[] = [{ value: body, depth: 1 }];
  while (pending.length > 0) {
    const { value, depth } = pending.pop()!;
    if (depth > limits.maxDepth) {
      throw createError(413, `the JSON body is nested more than JSON_MAX_DEPTH (${limits.maxDepth}) levels deep`);
    }
    const children = Array.isArray(value) ? value : Object.values(value);
    if (!Array.isArray(value)) {
      keys += children.length;
      if (keys > limits.maxKeys) throw createError(413, `the JSON body has more than JSON_MAX_KEYS (${limits.maxKeys}) object keys`);
    }
    for (const child of children) {
      if (typeof child === 'object' && child !== null) pending.push({ value: child as object, depth: depth + 1 });
    }
  }
}

/** Runs checkJsonShape on `req.body` when a JSON parser has set it; other bodies pass. */
export function limitJsonShape(limits: JsonLimits): RequestHandler {
  return function limitJsonShapeHandler(req, _res, next) {
    if (req.body === undefined || Buffer.isBuffer(req.body) || !req.is(['application/json', 'application/*+json'])) return next();
    checkJsonShape(req.body, limits);
    next();
  };
}
