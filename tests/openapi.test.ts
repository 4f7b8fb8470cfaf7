import fs from 'node:fs';
import path from 'node:path';
import express from 'express';
import request from 'supertest';
import { createApp } from '../app';
import { buildOpenApiDocument, serializeOpenApiDocument } from '../services/openapi';
import { TestApp, startTestApp } from './helpers/app';
import { ResponseChecker, inspectResponses, takeViolations } from './helpers/response-check';
import { compareOperations, listAppOperations, listDocumentOperations } from './helpers/routes';

const COMMITTED_DOCUMENT = path.join(__dirname, '..', 'openapi.json');

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
    expect(page.text).toContain("url: '/openapi.json'");
    expect(page.text).not.toMatch(/https?:\/\//);
    expect(assets).toEqual(['/docs/swagger-ui.css', '/docs/favicon-32x32.png', '/docs/swagger-ui-bundle.js', '/docs/swagger-ui-standalone-preset.js']);
    for (const asset of assets) {
      const response = await request(testApp.app).get(asset);
      expect(`${asset} ${response.status}`).toBe(`${asset} 200`);
      expect(response.body.length ?? response.text.length).toBeGreaterThan(0);
    }
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
    expect(violations[0].problems).toEqual(['status 202 is not documented for GET /healthz (documented: 200, 401, 500)']);
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
