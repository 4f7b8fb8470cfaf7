import crypto from 'node:crypto';
import path from 'node:path';
import express from 'express';
import { rejectOtherMethods } from '../middleware/method-not-allowed';
import { openApiDocument } from '../services/openapi';

// swagger-ui-dist's own folder, whose CSS and scripts the page loads. Its index.html and
// swagger-initializer.js, which point at the Swagger pet store, are replaced below.
const SWAGGER_UI_DIRECTORY = path.dirname(require.resolve('swagger-ui-dist/package.json'));

const DOCS_PAGE = `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>inferline API</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css">
    <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/swagger-ui-standalone-preset.js"></script>
    <script src="/docs/swagger-initializer.js"></script>
  </body>
</html>
`;

// Starts Swagger UI on this service's document. It is a file, not an inline script, because the
// Content-Security-Policy (middleware/security-headers.ts) allows scripts from this origin only.
// It replaces the swagger-ui-dist file of the same name, which points at the Swagger pet store.
const SWAGGER_INITIALIZER = `window.addEventListener('load', function startSwaggerUi() {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: 'StandaloneLayout',
  });
});
`;

/** GET /openapi.json, the API's OpenAPI document, and GET /docs, the same in Swagger UI. */
export const documentationRouter = express.Router();

const document = documentationRouter.route('/openapi.json');
document.get(function openApiDocumentRoute(_req, res) {
  res.json(openApiDocument());
});
document.all(rejectOtherMethods(document));

// The app sends no ETag of its own (app.ts), so these two fixed texts set theirs, and a browser's
// revalidation gets 304.
const DOCS_PAGE_ETAG = entityTagOf(DOCS_PAGE);
const SWAGGER_INITIALIZER_ETAG = entityTagOf(SWAGGER_INITIALIZER);

function entityTagOf(text: string): string {
  return `"${crypto.createHash('sha256').update(text).digest('base64url').slice(0, 27)}"`;
}

const docs = documentationRouter.route('/docs');
docs.get(function docsPageRoute(_req, res) {
  res.set('ETag', DOCS_PAGE_ETAG).type('html').send(DOCS_PAGE);
});
docs.all(rejectOtherMethods(docs));

const initializer = documentationRouter.route('/docs/swagger-initializer.js');
initializer.get(function swaggerInitializerRoute(_req, res) {
  res.set('ETag', SWAGGER_INITIALIZER_ETAG).type('text/javascript').send(SWAGGER_INITIALIZER);
});
initializer.all(rejectOtherMethods(initializer));

documentationRouter.use('/docs', express.static(SWAGGER_UI_DIRECTORY, { index: false, fallthrough: true }));
