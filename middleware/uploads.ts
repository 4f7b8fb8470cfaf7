import type { RequestHandler } from 'express';
import multer from 'multer';

export interface UploadLimits {
  maxImageBytes: number;
  maxItems: number;
}

/**
 * Parses `multipart/form-data` bodies into `req.files` (kept in memory) and `req.body` fields.
 * Every file field counts as an item, in the order received. Does nothing for other content types.
 */
export function parseMultipart(limits: UploadLimits): RequestHandler {
  return multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: limits.maxImageBytes, files: limits.maxItems, fields: 20, fieldSize: 64 * 1024, parts: limits.maxItems + 20 },
  }).any();
}

/** Returns the uploaded files of a multipart request, or an empty list. */
export function uploadedFiles(req: Express.Request): Express.Multer.File[] {
  return Array.isArray(req.files) ? req.files : [];
}
