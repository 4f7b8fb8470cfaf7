import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import request from 'supertest';
import { isReadPixelJson, readPixelJson, shapeOfPixelJson } from '../services/pixel-json';
import { TestApp, expectProblem, startTestApp } from './helpers/app';
import { digitToRows, heldOutDigits } from './helpers/images';

jest.setTimeout(60_000);

function read(text: string): unknown {
  return readPixelJson(Buffer.from(text, 'utf8'));
}

// A deterministic generator, so a failing body can be reproduced from the test name.
function numberGenerator(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

// Writes a number in one of the forms a client may send: few decimals, full doubles, exponents, integers.
function writeNumber(random: () => number): string {
  const value = random();
  switch (Math.floor(random() * 6)) {
    case 0:
      return (Math.round(value * 1000) / 1000).toString();
    case 1:
      return (Math.round(value * 255) / 255).toString();
    case 2:
      return value.toExponential(Math.floor(random() * 8)).replace('e', random() < 0.5 ? 'e' : 'E');
    case 3:
      return String(Math.round(value));
    case 4:
      return (-value).toFixed(Math.floor(random() * 18));
    default:
      return value.toFixed(15);
  }
}

function writeBody(random: () => number): string {
  const space = () => [' ', '', '\n', '\t', '\r\n  '][Math.floor(random() * 5)];
  const instances = Array.from({ length: 1 + Math.floor(random() * 3) }, () => {
    const rows = Array.from({ length: Math.floor(random() * 4) }, () => {
      const values = Array.from({ length: Math.floor(random() * 5) }, () => `${space()}${writeNumber(random)}${space()}`);
      return `${space()}[${values.join(',')}]${space()}`;
    });
    return `${space()}{${space()}"pixels"${space()}:${space()}[${rows.join(',')}]${space()}}${space()}`;
  });
  return `${space()}{${space()}"instances"${space()}:${space()}[${instances.join(',')}]${space()}}${space()}`;
}

describe('readPixelJson', () => {
  test.each(Array.from({ length: 300 }, (_, seed) => seed))('body %i of random numbers and spacing reads as JSON.parse reads it', (seed) => {
    const text = writeBody(numberGenerator(seed + 1));

    expect(read(text)).toEqual(JSON.parse(text));
  });

  test('held-out digit divided by 255 matches JSON.parse', () => {
    const rows = digitToRows(heldOutDigits()[0]).map((row) => row.map((value) => Math.round(value * 255) / 255));
    const text = JSON.stringify({ instances: [{ pixels: rows }, { pixels: rows }] });

    expect(read(text)).toEqual(JSON.parse(text));
  });

  test('negative zero and empty lists keep their exact values', () => {
    const parsed = read('{"instances":[{"pixels":[[-0, 0, 1.0, 0.5e1], []]}, {"pixels": []}]}') as { instances: { pixels: number[][] }[] };

    expect(Object.is(parsed.instances[0].pixels[0][0], -0)).toBe(true);
    expect(parsed).toEqual(JSON.parse('{"instances":[{"pixels":[[-0, 0, 1.0, 0.5e1], []]}, {"pixels": []}]}'));
    expect(read('{"instances": []}')).toEqual({ instances: [] });
  });

  test.each([
    ['an empty body', ''],
    ['an image item', '{"instances":[{"image":"AAAA"}]}'],
    ['another top-level key', '{"instances":[],"extra":1}'],
    ['a key before instances', '{"extra":1,"instances":[]}'],
    ['another key in an instance', '{"instances":[{"pixels":[[0]],"extra":1}]}'],
    ['an escaped key', '{"\\u0069nstances":[]}'],
    ['text after the object', '{"instances":[]} x'],
    ['a cut-off body', '{"instances":[{"pixels":[[0.1,0.2'],
    ['a trailing comma', '{"instances":[{"pixels":[[0.1,]]}]}'],
    ['a leading zero', '{"instances":[{"pixels":[[01]]}]}'],
    ['a bare dot', '{"instances":[{"pixels":[[1.]]}]}'],
    ['a leading dot', '{"instances":[{"pixels":[[.5]]}]}'],
    ['a plus sign', '{"instances":[{"pixels":[[+1]]}]}'],
    ['an exponent without digits', '{"instances":[{"pixels":[[1e]]}]}'],
    ['a string value', '{"instances":[{"pixels":[["0.5"]]}]}'],
    ['an array of channels', '{"instances":[{"pixels":[[[0.1,0.2,0.3]]]}]}'],
    ['a null row', '{"instances":[{"pixels":[null]}]}'],
    ['a byte order mark', '\uFEFF{"instances":[]}'],
    ['a top-level array', '[{"instances":[]}]'],
  ])('gives up on %s, leaving it to JSON.parse', (_name, text) => {
    expect(read(text)).toBeNull();
  });
});

/** Depth and object-key count of any JSON value, by a plain recursive walk. */
function walkShape(value: unknown, depth = 1): { depth: number; keys: number } {
  if (typeof value !== 'object' || value === null) return { depth: depth - 1, keys: 0 };
  const children = Array.isArray(value) ? value : Object.values(value);
  let deepest = depth;
  let keys = Array.isArray(value) ? 0 : children.length;
  for (const child of children) {
    const shape = walkShape(child, depth + 1);
    deepest = Math.max(deepest, shape.depth);
    keys += shape.keys;
  }
  return { depth: deepest, keys };
}

describe('shapeOfPixelJson', () => {
  test.each([
    ['no instances', '{"instances":[]}'],
    ['an instance without rows', '{"instances":[{"pixels":[]}]}'],
    ['an empty row', '{"instances":[{"pixels":[[]]}]}'],
    ['one digit', JSON.stringify({ instances: [{ pixels: [[0, 0.5], [1, 0]] }] })],
    ['rows after an empty instance', '{"instances":[{"pixels":[]},{"pixels":[[0.1]]},{"pixels":[]}]}'],
    ['40 instances', JSON.stringify({ instances: Array.from({ length: 40 }, () => ({ pixels: [[0.25]] })) })],
  ])('gives what a walk of the value gives for %s', (_name, text) => {
    const body = read(text);

    expect(isReadPixelJson(body)).toBe(true);
    expect(shapeOfPixelJson(body as Parameters<typeof shapeOfPixelJson>[0])).toEqual(walkShape(JSON.parse(text)));
  });

  test('JSON.parse result is not a read body', () => {
    expect(isReadPixelJson(JSON.parse('{"instances":[]}'))).toBe(false);
  });
});

describe('POST /predict with the pixel body reader', () => {
  let testApp: TestApp;
  const digit = heldOutDigits()[3];

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  function predictText(text: string): request.Test {
    return request(testApp.app).post('/predict').set('Content-Type', 'application/json').send(text);
  }

  test('a pretty-printed body with long decimals predicts what the compact body predicts', async () => {
    const rows = digitToRows(digit);
    const compact = await predictText(JSON.stringify({ instances: [{ pixels: rows }] })).expect(200);
    const pretty = await predictText(JSON.stringify({ instances: [{ pixels: rows.map((row) => row.map((value) => value / 1.000000001)) }] }, null, 2)).expect(200);

    expect(pretty.body.predictions[0].label).toBe(String(digit.label));
    expect(pretty.body.predictions[0].label).toBe(compact.body.predictions[0].label);
    expect(pretty.body.predictions[0].confidence).toBeCloseTo(compact.body.predictions[0].confidence, 5);
  });

  test('a body the reader gives up on still works through JSON.parse', async () => {
    const text = `\uFEFF${JSON.stringify({ instances: [{ pixels: digitToRows(digit) }] })}`;

    const response = await predictText(text).expect(200);

    expect(response.body.predictions[0].label).toBe(String(digit.label));
  });

  test('a gzip-compressed body is read', async () => {
    // Over a real socket: supertest's own request encoding garbles a compressed body.
    const server = testApp.app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const response = await fetch(`http://127.0.0.1:${port}/predict`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' },
        body: zlib.gzipSync(JSON.stringify({ instances: [{ pixels: digitToRows(digit) }] })),
      });

      expect(response.status).toBe(200);
      const body = (await response.json()) as { predictions: { label: string }[] };
      expect(body.predictions[0].label).toBe(String(digit.label));
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('JSON string body is 400', async () => {
    const response = await predictText('"instances"');

    expectProblem(response, 400);
    expect(response.body.detail).toBe('the request body must be a JSON object');
  });

  test('an out-of-range pixel read by the fast reader names its place', async () => {
    const rows = digitToRows(digit);
    rows[2][5] = 1.5;

    const response = await predictText(JSON.stringify({ instances: [{ pixels: rows }] }));

    expectProblem(response, 400);
    expect(response.body.errors).toEqual([{ path: 'instances[0].pixels[2][5]', message: 'expected a number in 0..1, got 1.5' }]);
  });

  test('an empty JSON body is 400 naming the missing instances', async () => {
    const response = await predictText('');

    expectProblem(response, 400);
    expect(response.body.errors[0].path).toBe('instances');
  });
});
