import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import request from 'supertest';
import ts from 'typescript';
import { createApp } from '../app';
import { API_TYPES_FILE } from '../scripts/api-types';
import { buildOpenApiDocument, serializeOpenApiDocument } from '../services/openapi';
import { TestApp, startTestApp } from './helpers/app';
import { ResponseChecker, inspectResponses, takeViolations } from './helpers/response-check';
import { compareOperations, listAppOperations, listDocumentOperations } from './helpers/routes';

const ROOT = path.join(__dirname, '..');
const COMMITTED_DOCUMENT = path.join(ROOT, 'openapi.json');

/**
 * Renders the API types of `document` with the built scripts/api-types.js in a child process,
 * because jest cannot load the ES modules that openapi-typescript requires.
 */
function renderApiTypes(document: object): string {
  const script = path.join(ROOT, 'dist', 'scripts', 'api-types.js');
  if (!fs.existsSync(script)) throw new Error(`${script} is missing; run npm run build first`);
  const result = spawnSync(process.execPath, [script], { input: JSON.stringify(document), encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${script} failed with exit code ${result.status}: ${result.stderr}`);
  return result.stdout;
}

/** Type-checks the web page's code with `apiTypes` in place of web/src/api-types.ts; returns the errors. */
function typeCheckWebPage(apiTypes: string): string[] {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-web-'));
  try {
    fs.cpSync(path.join(ROOT, 'web', 'src'), path.join(directory, 'src'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'web', 'tsconfig.json'), path.join(directory, 'tsconfig.json'));
    fs.writeFileSync(path.join(directory, 'src', 'api-types.ts'), apiTypes);

    const configFile = ts.readConfigFile(path.join(directory, 'tsconfig.json'), ts.sys.readFile);
    const config = ts.parseJsonConfigFileContent(configFile.config, ts.sys, directory);
    const program = ts.createProgram(config.fileNames, { ...config.options, noEmit: true });
    return ts.getPreEmitDiagnostics(program).map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

type Document = ConstructorParameters<typeof ResponseChecker>[0];

describe('OpenAPI document', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp();
  });

  afterAll(async () => {
    await testApp.close();
  });

  test('committed openapi.json is up to date', () => {
    const committed = fs.readFileSync(COMMITTED_DOCUMENT, 'utf8');

    const state = committed === serializeOpenApiDocument() ? 'up to date' : 'out of date: run `npm run openapi` and commit openapi.json';
    expect(state).toBe('up to date');
  });

  test('committed API types are up to date', () => {
    const committed = fs.readFileSync(path.join(ROOT, API_TYPES_FILE), 'utf8');

    const generated = renderApiTypes(buildOpenApiDocument());

    const state = committed === generated ? 'up to date' : `out of date: run \`npm run openapi\` and commit ${API_TYPES_FILE}`;
    expect(state).toBe('up to date');
  });

  test('web page compiles against the types', () => {
    const errors = typeCheckWebPage(renderApiTypes(buildOpenApiDocument()));

    expect(errors).toEqual([]);
  });

  test('schema change that breaks the page fails', () => {
    const document = buildOpenApiDocument() as unknown as { components: { schemas: Record<string, { properties: Record<string, unknown>; required: string[] }> } };
    const prediction = document.components.schemas.Prediction;
    delete prediction.properties.confidence;
    prediction.required = prediction.required.filter((name) => name !== 'confidence');

    const errors = typeCheckWebPage(renderApiTypes(document));

    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join('\n')).toMatch(/Property 'confidence' does not exist/);
  });

  test('GET /openapi.json serves the document', async () => {
    const response = await request(testApp.app).get('/openapi.json');

    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.body).toEqual(buildOpenApiDocument());
    expect(response.body.openapi).toBe('3.1.0');
  });

  test('document declares the bearer scheme', () => {
    const document = buildOpenApiDocument();

    expect(document.components?.securitySchemes?.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(document.paths?.['/users/me']?.get?.security).toEqual([{ bearerAuth: [] }]);
    expect(document.security).toEqual([{}, { bearerAuth: [] }]);
  });

  test('202 responses document Location', () => {
    const paths = buildOpenApiDocument().paths ?? {};

    for (const operation of [paths['/predict']?.post, paths['/orders']?.post]) {
      expect(operation?.responses?.['202']?.headers?.Location).toEqual({ $ref: '#/components/headers/Location' });
    }
  });

  test('every documented body schema compiles', () => {
    const document = buildOpenApiDocument() as unknown as Document;
    const checker = new ResponseChecker(document);
    const schemas = listDocumentOperations(document).flatMap(({ method, path: template }) => {
      const operation = document.paths[template][method.toLowerCase()] as { responses: Record<string, { content?: Record<string, { schema: unknown }> }> };
      return Object.values(operation.responses).flatMap((response) => Object.values(response.content ?? {}).map((media) => media.schema));
    });

    expect(schemas.length).toBeGreaterThan(50);
    // Compiling happens on first use; an invalid schema or a dangling $ref throws here.
    for (const schema of schemas) expect(() => checker.validatorFor(schema)).not.toThrow();
  });

  test('GET /docs serves Swagger UI from this server', async () => {
    const page = await request(testApp.app).get('/docs');
    const assets = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]);

    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.text).not.toMatch(/https?:\/\//);
    expect(page.text).not.toMatch(/<script>/);
    expect(assets).toEqual([
      '/docs/swagger-ui.css',
      '/docs/favicon-32x32.png',
      '/docs/swagger-ui-bundle.js',
      '/docs/swagger-ui-standalone-preset.js',
      '/docs/swagger-initializer.js',
    ]);
    for (const asset of assets) {
      const response = await request(testApp.app).get(asset);
      expect(`${asset} ${response.status}`).toBe(`${asset} 200`);
      expect(response.body.length ?? response.text.length).toBeGreaterThan(0);
    }
  });

  test('Swagger UI starts on this document', async () => {
    const response = await request(testApp.app).get('/docs/swagger-initializer.js');

    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/javascript/);
    expect(response.text).toContain("url: '/openapi.json'");
    expect(response.text).not.toContain('petstore');
  });

  test.each(['/docs', '/docs/swagger-initializer.js', '/docs/swagger-ui.css'])('%s revalidates to 304', async (path) => {
    const first = await request(testApp.app).get(path);

    const again = await request(testApp.app).get(path).set('If-None-Match', first.headers.etag);

    expect(first.headers.etag).toMatch(/^(W\/)?"/);
    expect(again.status).toBe(304);
  });

  test.each(['/openapi.json', '/model', '/healthz'])('%s has no ETag', async (path) => {
    const response = await request(testApp.app).get(path);

    expect(response.status).toBe(200);
    expect(response.headers.etag).toBeUndefined();
  });

  test('unknown docs file is 404', async () => {
    const response = await request(testApp.app).get('/docs/no-such-file.js');

    expect(response.status).toBe(404);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  describe('agreement with the routes', () => {
    test('every route is documented and every operation routed', () => {
      const result = compareOperations(listAppOperations(testApp.app), listDocumentOperations(buildOpenApiDocument()));

      expect(result).toEqual({ undocumented: [], notRouted: [] });
    });

    test('an undocumented route is reported', () => {
      const app = createApp(testApp.services);
      const extra = express.Router();
      extra.get('/:name/stats', (_req, res) => {
        res.json({});
      });
      app.use('/extra', extra);
      app.delete('/model', (_req, res) => {
        res.status(204).end();
      });

      const result = compareOperations(listAppOperations(app), listDocumentOperations(buildOpenApiDocument()));

      expect(result.undocumented).toEqual(['DELETE /model', 'GET /extra/{}/stats']);
      expect(result.notRouted).toEqual([]);
    });

    test('a documented operation without a route is reported', () => {
      const document = buildOpenApiDocument();
      document.paths = { ...document.paths, '/orders/{id}/refund': { post: { responses: {} } } };

      const result = compareOperations(listAppOperations(testApp.app), listDocumentOperations(document));

      expect(result).toEqual({ undocumented: [], notRouted: ['POST /orders/{}/refund'] });
    });
  });
});

describe('response check', () => {
  /** Builds an app whose GET /healthz sends what `send` writes, checked as startTestApp's apps are. */
  function appSending(send: (res: express.Response) => void): express.Express {
    const app = express();
    app.use(inspectResponses());
    app.use((req, res, next) => {
      res.setHeader('X-Request-Id', 'check');
      next();
    });
    app.get('/healthz', (_req, res) => send(res));
    return app;
  }

  afterEach(() => {
    // The violations these tests provoke are what they check, so none is left for the setup file.
    takeViolations();
  });

  test('valid response passes', async () => {
    await request(appSending((res) => res.json({ status: 'ok' }))).get('/healthz').expect(200);

    expect(takeViolations()).toEqual([]);
  });

  test('extra field is rejected', async () => {
    await request(appSending((res) => res.json({ status: 'ok', uptime: 12 }))).get('/healthz').expect(200);

    const violations = takeViolations();
    expect(violations).toHaveLength(1);
    expect(violations[0].request).toBe('GET /healthz');
    expect(violations[0].problems.join('\n')).toMatch(/must NOT have additional properties.*uptime/);
  });

  test('undocumented status is rejected', async () => {
    await request(appSending((res) => res.status(202).json({ status: 'ok' }))).get('/healthz').expect(202);

    const violations = takeViolations();
    expect(violations).toHaveLength(1);
    expect(violations[0].problems).toEqual(['status 202 is not documented for GET /healthz (documented: 200, 500)']);
  });

  test('wrong error format is rejected', async () => {
    await request(appSending((res) => res.status(500).json({ error: 'boom' }))).get('/healthz').expect(500);

    const problems = takeViolations()[0]?.problems ?? [];
    expect(problems).toContain('Content-Type application/json is not documented (documented: application/problem+json)');
  });

  test('missing required header is rejected', async () => {
    const app = express();
    app.use(inspectResponses());
    app.get('/healthz', (_req, res) => res.json({ status: 'ok' }));

    await request(app).get('/healthz').expect(200);

    expect(takeViolations()[0]?.problems).toEqual(['required header X-Request-Id missing']);
  });
});
