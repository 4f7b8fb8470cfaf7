import sharp from 'sharp';

/** One grey channel, row-major, 0 (black) to 255 (white). */
export interface GreyImage {
  pixels: Uint8Array;
  width: number;
  height: number;
}

export const DIGIT_SIZE = 28;

// MNIST digits were scaled to fit a 20x20 box, then placed in 28x28 so that their centre of mass
// falls on the centre of the field (LeCun, Cortes and Burges, "The MNIST database").
const BOX_SIZE = 20;

// Pixels below this share of the brightest ink pixel count as background noise (paper texture,
// JPEG artefacts); MNIST's own anti-aliased edges start above it.
const NOISE_FLOOR = 0.12;

// Pixels at or above this share of the brightest ink pixel define the digit's bounding box.
const INK_THRESHOLD = 0.25;

/** Raised when an image decodes but contains no digit to classify: blank, or one flat colour. */
export class BlankImageError extends Error {
  constructor() {
    super('the image is blank: no digit was found on it');
    this.name = 'BlankImageError';
  }
}

/**
 * Flattens decoded RGBA pixels into one grey channel with the digit light on a dark background.
 *
 * Transparent pixels become a background that contrasts with the strokes, so a canvas export
 * (dark strokes on transparency) reads as dark-on-light. Then the polarity is taken from the
 * image border: a light border means dark ink on paper, which is inverted.
 */
export function flattenToInk(rgba: Uint8Array, width: number, height: number): GreyImage {
  const count = width * height;
  const luminance = new Float32Array(count);
  const alpha = new Float32Array(count);
  let opaqueLuminance = 0;
  let opaqueCount = 0;
  let hasTransparency = false;

  for (let i = 0; i < count; i++) {
    const r = rgba[i * 4];
    const g = rgba[i * 4 + 1];
    const b = rgba[i * 4 + 2];
    luminance[i] = 0.299 * r + 0.587 * g + 0.114 * b;
    alpha[i] = rgba[i * 4 + 3] / 255;
    if (alpha[i] < 0.98) hasTransparency = true;
    if (alpha[i] > 0.5) {
      opaqueLuminance += luminance[i];
      opaqueCount++;
    }
  }

  // Composite onto white when the visible strokes are dark, onto black when they are light.
  const strokesAreDark = opaqueCount === 0 || opaqueLuminance / opaqueCount < 128;
  const background = strokesAreDark ? 255 : 0;
  const grey = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    grey[i] = hasTransparency ? luminance[i] * alpha[i] + background * (1 - alpha[i]) : luminance[i];
  }

  const borderLevel = median(borderValues(grey, width, height));
  const invert = borderLevel > 127;
  const backgroundLevel = invert ? 255 - borderLevel : borderLevel;

  // Remove the background level and stretch the ink to the full 0..255 range.
  let brightest = 0;
  for (let i = 0; i < count; i++) {
    const ink = Math.max(0, (invert ? 255 - grey[i] : grey[i]) - backgroundLevel);
    grey[i] = ink;
    if (ink > brightest) brightest = ink;
  }
  if (brightest < 16) throw new BlankImageError();

  const pixels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const share = grey[i] / brightest;
    pixels[i] = share < NOISE_FLOOR ? 0 : Math.round(share * 255);
  }
  return { pixels, width, height };
}

/**
 * Crops a light-on-dark digit to its ink, scales it to fit a 20x20 box keeping its aspect ratio,
 * and centres it by mass in a 28x28 field. Returns 784 values in 0..1, row-major.
 */
export async function centreDigit(image: GreyImage): Promise<Float32Array> {
  const box = findInkBox(image);
  if (box === null) throw new BlankImageError();

  const cropped = new Uint8Array(box.width * box.height);
  for (let y = 0; y < box.height; y++) {
    const start = (box.top + y) * image.width + box.left;
    cropped.set(image.pixels.subarray(start, start + box.width), y * box.width);
  }

  const scale = BOX_SIZE / Math.max(box.width, box.height);
  const width = Math.max(1, Math.round(box.width * scale));
  const height = Math.max(1, Math.round(box.height * scale));
  const resized = await sharp(cropped, { raw: { width: box.width, height: box.height, channels: 1 } })
    .resize(width, height, { fit: 'fill', kernel: 'lanczos3' })
    .toColourspace('b-w')
    .raw()
    .toBuffer();

  const [massX, massY] = centreOfMass(resized, width, height);
  const offsetX = Math.round((DIGIT_SIZE - 1) / 2 - massX);
  const offsetY = Math.round((DIGIT_SIZE - 1) / 2 - massY);

  const field = new Float32Array(DIGIT_SIZE * DIGIT_SIZE);
  for (let y = 0; y < height; y++) {
    const fieldY = y + offsetY;
    if (fieldY < 0 || fieldY >= DIGIT_SIZE) continue;
    for (let x = 0; x < width; x++) {
      const fieldX = x + offsetX;
      if (fieldX < 0 || fieldX >= DIGIT_SIZE) continue;
      field[fieldY * DIGIT_SIZE + fieldX] = resized[y * width + x] / 255;
    }
  }
  return field;
}

/** Runs the whole MNIST digit pipeline on raw RGBA pixels. */
export async function preprocessDigit(rgba: Uint8Array, width: number, height: number): Promise<Float32Array> {
  return centreDigit(flattenToInk(rgba, width, height));
}

/** Expands a 28x28 grey digit in 0..1 (as the mnist package stores them) into RGBA bytes, so that
 * training data takes the same path through the pipeline as an uploaded image. */
export function digitToRgba(values: ArrayLike<number>): Uint8Array {
  const rgba = new Uint8Array(values.length * 4);
  for (let i = 0; i < values.length; i++) {
    // MNIST is light ink on black; an upload is usually dark ink on white, so store it that way.
    const level = 255 - Math.round(Math.min(1, Math.max(0, values[i])) * 255);
    rgba[i * 4] = level;
    rgba[i * 4 + 1] = level;
    rgba[i * 4 + 2] = level;
    rgba[i * 4 + 3] = 255;
  }
  return rgba;
}

interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

function findInkBox(image: GreyImage): Box | null {
  const threshold = INK_THRESHOLD * 255;
  let left = image.width;
  let right = -1;
  let top = image.height;
  let bottom = -1;
  for (let y = 0; y < image.height; y++) {
    for (let x = 0; x < image.width; x++) {
      if (image.pixels[y * image.width + x] < threshold) continue;
      if (x < left) left = x;
      if (x > right) right = x;
      if (y < top) top = y;
      if (y > bottom) bottom = y;
    }
  }
  if (right < 0) return null;
  return { left, top, width: right - left + 1, height: bottom - top + 1 };
}

function centreOfMass(pixels: Uint8Array, width: number, height: number): [number, number] {
  let mass = 0;
  let sumX = 0;
  let sumY = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const value = pixels[y * width + x];
      mass += value;
      sumX += value * x;
      sumY += value * y;
    }
  }
  if (mass === 0) return [(width - 1) / 2, (height - 1) / 2];
  return [sumX / mass, sumY / mass];
}

function borderValues(grey: Float32Array, width: number, height: number): number[] {
  const values: number[] = [];
  for (let x = 0; x < width; x++) {
    values.push(grey[x], grey[(height - 1) * width + x]);
  }
  for (let y = 1; y < height - 1; y++) {
    values.push(grey[y * width], grey[y * width + width - 1]);
  }
  return values;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
