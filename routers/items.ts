import type { Request } from 'express';
import createError from 'http-errors';
import { z } from 'zod';
import { uploadedFiles } from '../middleware/uploads';
import type { ItemInput } from '../services/items';
import { decodeBase64Image } from '../services/model-input';

/** An image sent inside JSON: base64, optionally as a data URL. */
export const imageItem = z
  .strictObject({
    image: z
      .string()
      .min(1, 'must be a non-empty base64 string')
      .meta({ description: 'PNG, JPEG or WebP bytes in base64 or base64url, optionally as a data: URL' }),
  })
  .meta({ id: 'ImageItem' });

/** A ready tensor: rows of numbers in 0..1. Checked value by value by pixelsToInput. */
export const pixelsItem = z
  .strictObject({
    pixels: z.array(z.unknown()).meta({
      description:
        "The model's input as height rows of width numbers in 0..1, or of arrays of `channels` numbers when the model takes more than one channel (see GET /model)",
    }),
  })
  .meta({ id: 'PixelsItem' });

/** True when the request body is multipart/form-data. */
export function isMultipart(req: Request): boolean {
  return req.is('multipart/form-data') === 'multipart/form-data';
}

/** Turns the uploaded files of a multipart request into items; at least one file is required. */
export function filesToItems(req: Request, maxItems: number): ItemInput[] {
  const files = uploadedFiles(req);
  if (files.length === 0) {
    throw createError(400, 'the multipart body has no files; attach one or more images', { errors: [{ path: 'files', message: 'at least one file is required' }] });
  }
  checkItemCount(files.length, 'files', maxItems);
  return files.map((file, index) => ({ kind: 'image', bytes: file.buffer, path: `files[${index}]` }));
}

/** Turns JSON items (`{image}` or `{pixels}`) into items, naming each by its place in the body. */
export function jsonToItems(entries: ({ image: string } | { pixels: unknown[] })[], field: string, maxItems: number): ItemInput[] {
  checkItemCount(entries.length, field, maxItems);
  return entries.map((entry, index) => {
    if ('image' in entry) {
      const path = `${field}[${index}].image`;
      return { kind: 'image', bytes: decodeBase64Image(entry.image, path), path };
    }
    return { kind: 'pixels', pixels: entry.pixels, path: `${field}[${index}].pixels` };
  });
}

function checkItemCount(count: number, field: string, maxItems: number): void {
  if (count > maxItems) {
    throw createError(413, `${field}: ${count} items is more than MAX_ITEMS (${maxItems}); split the request`, {
      errors: [{ path: field, message: `at most ${maxItems} items per request` }],
    });
  }
}
