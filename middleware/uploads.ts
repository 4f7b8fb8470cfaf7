import type { RequestHandler } from 'express';
import createError from 'http-errors';
import multer from 'multer';
import { servicesOf } from '../services/app-services';
import type { Config } from '../services/config';

/**
 * Parses `multipart/form-data` bodies into `req.files` (kept in memory) and `req.body` fields.
 * Every file field counts as an item, in the order received. Does nothing for other content types.
 *
 * Multer limits each file but not the whole body, so the body's declared length is checked against
 * MAX_BODY_BYTES first, and a multipart body without a Content-Length is rejected with 411.
 */
export const parseMultipart: RequestHandler = function parseMultipartHandler(req, res, next) {
  if (req.is('multipart/form-data') !== 'multipart/form-data') return next();
  const { config } = servicesOf(req);

  const declared = req.get('content-length');
  if (declared === undefined) {
    return next(createError(411, 'a multipart body needs a Content-Length header; send the files in one request without chunked encoding'));
  }
  if (Number(declared) > config.MAX_BODY_BYTES) {
    return next(createError(413, `the request body has ${declared} bytes, more than MAX_BODY_BYTES (${config.MAX_BODY_BYTES})`));
  }
  parserFor(config)(req, res, (error?: unknown) => {
    if (error instanceof multer.MulterError) return next(describeLimit(error, config));
    // Busboy reports a malformed body (no boundary, a cut-off part) as a plain Error.
    if (error instanceof Error && !createError.isHttpError(error)) {
      return next(createError(400, `invalid multipart body: ${error.message}`));
    }
    next(error);
  });
};

const MAX_FIELDS = 20;
const MAX_FIELD_BYTES = 64 * 1024;

/** Turns a multer limit error into a 413 that names the limit, its value and the field; other multer errors pass. */
function describeLimit(error: multer.MulterError, config: Config): Error {
  const field = error.field ? ` (field "${error.field}")` : '';
  switch (error.code) {
    case 'LIMIT_FILE_SIZE':
      return createError(413, `a file${field} is larger than MAX_IMAGE_BYTES (${config.MAX_IMAGE_BYTES} bytes); send a smaller image`);
    case 'LIMIT_FILE_COUNT':
      return createError(413, `the body has more than MAX_ITEMS (${config.MAX_ITEMS}) files; split the request`);
    case 'LIMIT_PART_COUNT':
      return createError(413, `the body has more than ${config.MAX_ITEMS + MAX_FIELDS} parts (MAX_ITEMS files and ${MAX_FIELDS} fields); split the request`);
    case 'LIMIT_FIELD_COUNT':
      return createError(413, `the body has more than ${MAX_FIELDS} form fields`);
    case 'LIMIT_FIELD_VALUE':
      return createError(413, `a form field${field} is longer than ${MAX_FIELD_BYTES} bytes`);
    default:
      return error;
  }
}

const parsers = new WeakMap<Config, RequestHandler>();

function parserFor(config: Config): RequestHandler {
  let parser = parsers.get(config);
  if (!parser) {
    parser = multer({
      storage: multer.memoryStorage(),
      limits: {
        fileSize: config.MAX_IMAGE_BYTES,
        files: config.MAX_ITEMS,
        fields: MAX_FIELDS,
        fieldSize: MAX_FIELD_BYTES,
        parts: config.MAX_ITEMS + MAX_FIELDS,
      },
    }).any();
    parsers.set(config, parser);
  }
  return parser;
}

/** Returns the uploaded files of a multipart request, or an empty list. */
export function uploadedFiles(req: Express.Request): Express.Multer.File[] {
  return Array.isArray(req.files) ? req.files : [];
}
