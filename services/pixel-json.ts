/**
 * Reads the most common body of POST /predict, `{"instances": [{"pixels": [[0.1, ...], ...]}, ...]}`,
 * about three times faster than JSON.parse, which spends most of its time turning thousands of
 * decimal texts into numbers. The result equals what JSON.parse returns. Any other text, including
 * every invalid one, gets null, and the caller falls back to JSON.parse, so errors are always
 * reported by the standard path.
 */
export function readPixelJson(bytes: Uint8Array): PixelJson | null {
  const instances: { pixels: number[][] }[] = [];
  let position = expectKey(bytes, expect(bytes, 0, OPEN_BRACE), INSTANCES_KEY);
  position = expect(bytes, position, OPEN_BRACKET);
  if (position < 0) return null;

  position = skipSpace(bytes, position);
  if (bytes[position] === CLOSE_BRACKET) {
    position++;
  } else {
    for (;;) {
      const pixels: number[][] = [];
      position = expectKey(bytes, expect(bytes, position, OPEN_BRACE), PIXELS_KEY);
      position = readRows(bytes, position, pixels);
      position = expect(bytes, position, CLOSE_BRACE);
      if (position < 0) return null;
      instances.push({ pixels });

      position = skipSpace(bytes, position);
      const separator = bytes[position++];
      if (separator === CLOSE_BRACKET) break;
      if (separator !== COMMA) return null;
    }
  }

  position = skipSpace(bytes, expect(bytes, position, CLOSE_BRACE));
  if (position !== bytes.length) return null;

  const body = { instances };
  READ_BODIES.add(body);
  return body;
}

export interface PixelJson {
  instances: { pixels: number[][] }[];
}

// The values that readPixelJson returned, so that later checks can trust their fixed form.
const READ_BODIES = new WeakSet<object>();

/** True when `value` is a body that readPixelJson returned. */
export function isReadPixelJson(value: unknown): value is PixelJson {
  return typeof value === 'object' && value !== null && READ_BODIES.has(value);
}

/**
 * Returns the nesting depth and the object-key count of a readPixelJson result without visiting its
 * numbers: the body, the instances array, each instance, its pixels and their rows, which contain
 * numbers only. It gives what a walk of the whole value would give.
 */
export function shapeOfPixelJson(body: PixelJson): { depth: number; keys: number } {
  const keys = 1 + body.instances.length;
  if (body.instances.length === 0) return { depth: 2, keys };

  const hasRows = body.instances.some((instance) => instance.pixels.length > 0);
  return { depth: hasRows ? 5 : 4, keys };
}

const SPACE = 0x20;
const TAB = 0x09;
const LINE_FEED = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const COMMA = 0x2c;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const SMALL_E = 0x65;
const CAPITAL_E = 0x45;

const INSTANCES_KEY = Uint8Array.from(Buffer.from('"instances"', 'latin1'));
const PIXELS_KEY = Uint8Array.from(Buffer.from('"pixels"', 'latin1'));

// A decimal with at most this many digits is read as an integer divided by a power of ten: both
// are exact doubles, so the one division rounds correctly and equals JSON.parse's result.
const MAX_EXACT_DIGITS = 15;
const POWERS_OF_TEN = Array.from({ length: MAX_EXACT_DIGITS + 1 }, (_, i) => 10 ** i);

// Each reader below takes the position to start at and returns the position after what it read,
// or -1 when the text is not of the expected form; -1 passes through every later call.

/** Reads `[[n, ...], ...]`, pushing one array of numbers per row onto `rows`. */
function readRows(bytes: Uint8Array, position: number, rows: number[][]): number {
  position = expect(bytes, position, OPEN_BRACKET);
  if (position < 0) return -1;
  position = skipSpace(bytes, position);
  if (bytes[position] === CLOSE_BRACKET) return position + 1;
  for (;;) {
    const row: number[] = [];
    position = readNumbers(bytes, expect(bytes, position, OPEN_BRACKET), row);
    if (position < 0) return -1;
    rows.push(row);

    position = skipSpace(bytes, position);
    const separator = bytes[position++];
    if (separator === CLOSE_BRACKET) return position;
    if (separator !== COMMA) return -1;
  }
}

/** Reads `n, n, ...]` (the opening bracket already read), pushing each number onto `row`. */
function readNumbers(bytes: Uint8Array, position: number, row: number[]): number {
  if (position < 0) return -1;
  position = skipSpace(bytes, position);
  if (bytes[position] === CLOSE_BRACKET) return position + 1;
  for (;;) {
    position = skipSpace(bytes, position);
    const start = position;
    let byte = bytes[position];
    const negative = byte === MINUS;
    if (negative) byte = bytes[++position];

    // JSON allows no leading zeros: "0" alone, or a non-zero digit first.
    let mantissa = 0;
    const integerStart = position;
    while (byte >= ZERO && byte <= NINE) {
      mantissa = mantissa * 10 + (byte - ZERO);
      byte = bytes[++position];
    }
    const integerDigits = position - integerStart;
    if (integerDigits === 0 || (integerDigits > 1 && bytes[integerStart] === ZERO)) return -1;

    let fractionDigits = 0;
    if (byte === DOT) {
      byte = bytes[++position];
      const fractionStart = position;
      while (byte >= ZERO && byte <= NINE) {
        mantissa = mantissa * 10 + (byte - ZERO);
        byte = bytes[++position];
      }
      fractionDigits = position - fractionStart;
      if (fractionDigits === 0) return -1;
    }

    if (byte === SMALL_E || byte === CAPITAL_E || integerDigits + fractionDigits > MAX_EXACT_DIGITS) {
      // Long decimals, such as a JavaScript client's value / 255, and exponents take the standard
      // conversion, which gives the same double as JSON.parse.
      position = skipExponent(bytes, position);
      if (position < 0) return -1;
      row.push(Number(Buffer.from(bytes.buffer, bytes.byteOffset + start, position - start).toString('latin1')));
      byte = bytes[position];
    } else {
      const value = mantissa / POWERS_OF_TEN[fractionDigits];
      row[row.length] = negative ? -value : value;
    }

    while (byte === SPACE || byte === LINE_FEED || byte === CARRIAGE_RETURN || byte === TAB) byte = bytes[++position];
    position++;
    if (byte === CLOSE_BRACKET) return position;
    if (byte !== COMMA) return -1;
  }
}

function skipExponent(bytes: Uint8Array, position: number): number {
  if (bytes[position] !== SMALL_E && bytes[position] !== CAPITAL_E) return position;
  position++;
  if (bytes[position] === MINUS || bytes[position] === PLUS) position++;
  const start = position;
  while (bytes[position] >= ZERO && bytes[position] <= NINE) position++;
  return position === start ? -1 : position;
}

/** Reads `"key":` where the key's text, quotes included, is exactly `key`. */
function expectKey(bytes: Uint8Array, position: number, key: Uint8Array): number {
  if (position < 0) return -1;
  position = skipSpace(bytes, position);
  for (let i = 0; i < key.length; i++) {
    if (bytes[position + i] !== key[i]) return -1;
  }
  return expect(bytes, position + key.length, COLON);
}

function expect(bytes: Uint8Array, position: number, byte: number): number {
  if (position < 0) return -1;
  position = skipSpace(bytes, position);
  return bytes[position] === byte ? position + 1 : -1;
}

function skipSpace(bytes: Uint8Array, position: number): number {
  let byte = bytes[position];
  while (byte === SPACE || byte === LINE_FEED || byte === CARRIAGE_RETURN || byte === TAB) byte = bytes[++position];
  return position;
}
