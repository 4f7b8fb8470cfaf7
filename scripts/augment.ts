const SIZE = 28;

export interface AugmentOptions {
  /** Largest rotation either way, in degrees. */
  maxRotationDegrees: number;
  /** Largest shift either way, in pixels. */
  maxShiftPixels: number;
  /** Largest relative change of size either way, for example 0.1 for 90% to 110%. */
  maxScaleChange: number;
  /** Probability of making the strokes thicker, and separately of making them thinner. */
  strokeChangeProbability: number;
}

export const DEFAULT_AUGMENT: AugmentOptions = {
  maxRotationDegrees: 12,
  maxShiftPixels: 2,
  maxScaleChange: 0.1,
  strokeChangeProbability: 0.15,
};

/**
 * Returns a randomly rotated, scaled, shifted and thickened or thinned copy of a 28x28 digit in
 * 0..1, so the network learns the variations that real drawings and photos show.
 */
export function augmentDigit(pixels: Float32Array, options: AugmentOptions, random: () => number): Float32Array {
  const angle = ((random() * 2 - 1) * options.maxRotationDegrees * Math.PI) / 180;
  const scale = 1 + (random() * 2 - 1) * options.maxScaleChange;
  const shiftX = (random() * 2 - 1) * options.maxShiftPixels;
  const shiftY = (random() * 2 - 1) * options.maxShiftPixels;
  let result = transform(pixels, angle, scale, shiftX, shiftY);

  const strokeRoll = random();
  if (strokeRoll < options.strokeChangeProbability) result = morph(result, Math.max);
  else if (strokeRoll < 2 * options.strokeChangeProbability) result = morph(result, Math.min);
  return result;
}

/** Builds a seeded pseudo-random generator (mulberry32), so training runs can be repeated. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Maps each output pixel back into the source image (inverse affine transform about the centre)
// and samples it bilinearly.
function transform(pixels: Float32Array, angle: number, scale: number, shiftX: number, shiftY: number): Float32Array {
  const output = new Float32Array(SIZE * SIZE);
  const centre = (SIZE - 1) / 2;
  const cos = Math.cos(angle) / scale;
  const sin = Math.sin(angle) / scale;

  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const dx = x - centre - shiftX;
      const dy = y - centre - shiftY;
      const sourceX = cos * dx + sin * dy + centre;
      const sourceY = -sin * dx + cos * dy + centre;
      output[y * SIZE + x] = sampleBilinear(pixels, sourceX, sourceY);
    }
  }
  return output;
}

function sampleBilinear(pixels: Float32Array, x: number, y: number): number {
  const x0 = Math.floor(x);
  const y0 = Math.floor(y);
  const fx = x - x0;
  const fy = y - y0;
  const top = pixelAt(pixels, x0, y0) * (1 - fx) + pixelAt(pixels, x0 + 1, y0) * fx;
  const bottom = pixelAt(pixels, x0, y0 + 1) * (1 - fx) + pixelAt(pixels, x0 + 1, y0 + 1) * fx;
  return top * (1 - fy) + bottom * fy;
}

function pixelAt(pixels: Float32Array, x: number, y: number): number {
  if (x < 0 || y < 0 || x >= SIZE || y >= SIZE) return 0;
  return pixels[y * SIZE + x];
}

// A 3x3 cross dilation (Math.max) or erosion (Math.min), blended half-way so strokes change by
// about half a pixel on each side.
function morph(pixels: Float32Array, combine: (...values: number[]) => number): Float32Array {
  const output = new Float32Array(SIZE * SIZE);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const centre = pixels[y * SIZE + x];
      const neighbour = combine(
        centre,
        pixelAt(pixels, x - 1, y),
        pixelAt(pixels, x + 1, y),
        pixelAt(pixels, x, y - 1),
        pixelAt(pixels, x, y + 1),
      );
      output[y * SIZE + x] = (centre + neighbour) / 2;
    }
  }
  return output;
}
