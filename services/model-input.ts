import createError from 'http-errors';
import sharp from 'sharp';
import type { Config } from './config';
import { preprocessDigit, BlankImageError } from './digit-pipeline';
import { AcceptedFormat, sniffImageFormat } from './image-format';
import type { LoadedModel } from './model';

// Maximum side, in pixels, of an image when the digit pipeline searches it for ink; larger images are
// shrunk to it first.
const WORKING_SIZE = 512;

export interface ImageLimits {
  maxImageBytes: number;
  maxImagePixels: number;
}

/** Returns the image limits that MAX_IMAGE_BYTES and MAX_IMAGE_PIXELS set. */
export function imageLimits(config: Pick<Config, 'MAX_IMAGE_BYTES' | 'MAX_IMAGE_PIXELS'>): ImageLimits {
  return { maxImageBytes: config.MAX_IMAGE_BYTES, maxImagePixels: config.MAX_IMAGE_PIXELS };
}

/** Builds a 4xx error whose problem details name the offending field in `errors`. */
export function itemError(status: number, path: string, message: string): createError.HttpError {
  return createError(status, `${path}: ${message}`, { errors: [{ path, message }] });
}

/**
 * Checks an image's size and format from its bytes, without decoding it. Throws 400 for empty or
 * non-image data, 413 over MAX_IMAGE_BYTES and 415 for image formats other than PNG, JPEG and WebP.
 */
export function checkImage(bytes: Uint8Array, path: string, limits: ImageLimits): AcceptedFormat {
  if (bytes.length === 0) throw itemError(400, path, 'the image is empty (0 bytes)');
  if (bytes.length > limits.maxImageBytes) {
    throw itemError(413, path, `the image has ${bytes.length} bytes, more than MAX_IMAGE_BYTES (${limits.maxImageBytes})`);
  }

  const sniffed = sniffImageFormat(bytes);
  if (sniffed.kind === 'unsupported') {
    throw itemError(415, path, `${sniffed.format.toUpperCase()} images are not supported; send PNG, JPEG or WebP`);
  }
  if (sniffed.kind === 'unknown') {
    throw itemError(400, path, 'the data is not a PNG, JPEG or WebP image');
  }
  return sniffed.format;
}

/**
 * Decodes a checked image and runs the model's preprocessing on it. Returns one model input.
 * Throws 400 when the image cannot be decoded or shows no digit, and 413 over MAX_IMAGE_PIXELS.
 */
export async function imageToInput(bytes: Uint8Array, path: string, model: LoadedModel, limits: ImageLimits): Promise<Float32Array> {
  try {
    // failOn 'truncated' rejects images whose data ends early, yet accepts the minor warnings that
    // many cameras' JPEGs raise. autoOrient applies the EXIF orientation.
    const decoder = sharp(bytes, { limitInputPixels: limits.maxImagePixels, failOn: 'truncated' }).autoOrient();

    if (model.metadata.preprocessing === 'mnist-digit') {
      // The digit ends up 20 pixels tall, so a large photo is first shrunk in sharp's native code
      // rather than walked pixel by pixel in JavaScript.
      const { data, info } = await decoder
        .resize(WORKING_SIZE, WORKING_SIZE, { fit: 'inside', withoutEnlargement: true })
        .toColourspace('srgb')
        .ensureAlpha()
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
      return await preprocessDigit(data, info.width, info.height);
    }

    const { height, width, channels } = model.inputSize;
    const resized = decoder.resize(width, height, { fit: 'fill' }).removeAlpha();
    const colour = channels === 1 ? resized.toColourspace('b-w') : resized.toColourspace('srgb');
    const { data } = await colour.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return Float32Array.from(data, (value) => value / 255);
  } catch (error) {
    if (error instanceof BlankImageError) throw itemError(400, path, error.message);
    const message = (error as Error).message;
    if (/pixel limit/i.test(message)) {
      throw itemError(413, path, `the image has more pixels than MAX_IMAGE_PIXELS (${limits.maxImagePixels})`);
    }
    throw itemError(400, path, `the image cannot be decoded (${message.replace(/^Vips\w*: /, '')})`);
  }
}

/**
 * Checks a pixel array against the model's input shape (height rows of width values, or of
 * `channels`-long arrays when the model takes more than one channel) with values in 0..1.
 * A plain loop rather than a schema, because a schema check of every value of a large array is
 * costly. Returns one model input.
 */
export function pixelsToInput(pixels: unknown, path: string, model: LoadedModel): Float32Array {
  const { height, width, channels } = model.inputSize;
  const shape = channels === 1 ? `${height} rows of ${width} numbers` : `${height} rows of ${width} arrays of ${channels} numbers`;
  const input = new Float32Array(height * width * channels);

  if (!Array.isArray(pixels) || pixels.length !== height) {
    throw itemError(400, path, `expected ${shape} in 0..1`);
  }
  for (let y = 0; y < height; y++) {
    const row: unknown = pixels[y];
    if (!Array.isArray(row) || row.length !== width) {
      throw itemError(400, `${path}[${y}]`, `expected a row of ${width} ${channels === 1 ? 'numbers' : 'arrays'}`);
    }
    if (channels === 1) {
      // The common case of one value a pixel, without the per-pixel array of the loop below.
      for (let x = 0; x < width; x++) {
        const value: unknown = row[x];
        if (!isUnitValue(value)) throw valueError(value, `${path}[${y}][${x}]`);
        input[y * width + x] = value;
      }
      continue;
    }
    for (let x = 0; x < width; x++) {
      const values: unknown = row[x];
      if (!Array.isArray(values) || values.length !== channels) {
        throw itemError(400, `${path}[${y}][${x}]`, `expected an array of ${channels} numbers`);
      }
      for (let c = 0; c < channels; c++) {
        const value: unknown = values[c];
        if (!isUnitValue(value)) throw valueError(value, `${path}[${y}][${x}][${c}]`);
        input[(y * width + x) * channels + c] = value;
      }
    }
  }
  return input;
}

function isUnitValue(value: unknown): value is number {
  return typeof value === 'number' && value >= 0 && value <= 1;
}

function valueError(value: unknown, path: string): createError.HttpError {
  return itemError(400, path, `expected a number in 0..1, got ${JSON.stringify(value)}`);
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Decodes base64 or base64url, with or without a `data:image/...;base64,` prefix; throws 400 naming `path`. */
export function decodeBase64Image(text: string, path: string): Buffer {
  const payload = text.replace(/^data:[\w.+/-]*;base64,/, '').replace(/\s+/g, '');
  if (!BASE64.test(payload) || payload.length % 4 === 1) {
    throw itemError(400, path, 'the image is not valid base64');
  }
  return Buffer.from(payload, payload.includes('-') || payload.includes('_') ? 'base64url' : 'base64');
}
