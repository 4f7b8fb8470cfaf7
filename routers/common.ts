import type { Request } from 'express';
import { z } from 'zod';

/** `limit` and `offset` query parameters of every list endpoint. */
export const pageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  offset: z.coerce.number().int().min(0).default(0),
});

/** A path parameter that must be a UUID, as every id this service issues is. */
export const idParams = z.object({ id: z.uuid({ message: 'must be a UUID' }).transform((id) => id.toLowerCase()) });

/** True when the client sent `Prefer: respond-async` (RFC 7240). */
export function prefersAsync(req: Request): boolean {
  const header = req.get('prefer');
  if (header === undefined) return false;
  return header.split(/[,;]/).some((token) => token.trim().toLowerCase() === 'respond-async');
}
