import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { TestApp, expectProblem, startTestApp } from './helpers/app';

// `npm test` builds the page into dist/web before the API tests run.
const BUILT_PAGE = path.join(__dirname, '..', 'dist', 'web');

describe('web page', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp({ WEB_DIR: BUILT_PAGE });
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('GET / returns the page', async () => {
    const response = await request(testApp.app).get('/');

    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/html/);
    expect(response.text).toContain('<canvas id="drawing-pad"');
    expect(response.text).toContain('<script type="module" src="js/main.js"></script>');
  });

  test('page allows only its own scripts', async () => {
    const response = await request(testApp.app).get('/');

    expect(response.headers['content-security-policy']).toContain("default-src 'self'");
    expect(response.headers['x-content-type-options']).toBe('nosniff');
  });

  test.each<[string, RegExp]>([
    ['/styles.css', /^text\/css/],
    ['/favicon.svg', /^image\/svg\+xml/],
    ['/js/main.js', /^(text|application)\/javascript/],
    ['/js/api.js', /^(text|application)\/javascript/],
  ])('%s is served', async (file, type) => {
    const response = await request(testApp.app).get(file);

    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(type);
  });

  test('HEAD / returns headers only', async () => {
    const response = await request(testApp.app).head('/');

    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/html/);
  });

  test('POST / is 405', async () => {
    const response = await request(testApp.app).post('/').send({});

    expectProblem(response, 405);
    expect(response.headers.allow).toBe('GET, HEAD, OPTIONS');
  });

  test.each(['/no-such-file.js', '/js', '/js/', '/js/no-such-module.js', '/../package.json', '/%2e%2e/package.json'])('unknown path %s is 404 problem', async (file) => {
    const response = await request(testApp.app).get(file);

    expectProblem(response, 404);
  });

  test('JSON routes keep JSON responses', async () => {
    const response = await request(testApp.app).get('/model').set('Accept', 'application/json');

    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.body.name).toBe('digits');
  });

  test('API errors stay problem+json', async () => {
    const response = await request(testApp.app).get('/orders').set('Accept', 'text/html');

    expectProblem(response, 401);
  });
});

describe('web page not built', () => {
  let testApp: TestApp;
  let emptyDir: string;

  beforeAll(async () => {
    emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-no-page-'));
    testApp = await startTestApp({ WEB_DIR: emptyDir });
  });

  afterAll(async () => {
    await testApp.close();
    fs.rmSync(emptyDir, { recursive: true, force: true });
  });

  test('GET / is 404 naming the build step', async () => {
    const response = await request(testApp.app).get('/');

    expectProblem(response, 404);
    expect(response.body.detail).toContain(`${path.join(emptyDir, 'index.html')} is missing. Run npm run build`);
  });
});
