/**
 * Writes the OpenAPI document that the app serves at GET /openapi.json to openapi.json, and the
 * TypeScript types that openapi-typescript generates from it to web/src/api-types.ts, relative to
 * the current directory (the repository root under `npm run openapi`). A test fails while either
 * committed file differs from what this writes.
 */
import fs from 'node:fs';
import { buildOpenApiDocument, serializeOpenApiDocument } from '../services/openapi';
import { API_TYPES_FILE, renderApiTypes } from './api-types';

const DOCUMENT_FILE = 'openapi.json';

async function writeFiles(): Promise<void> {
  const document = buildOpenApiDocument();
  fs.writeFileSync(DOCUMENT_FILE, serializeOpenApiDocument(document));
  console.log(`wrote ${DOCUMENT_FILE}`);
  fs.writeFileSync(API_TYPES_FILE, await renderApiTypes(document));
  console.log(`wrote ${API_TYPES_FILE}`);
}

writeFiles().catch((error: unknown) => {
  console.error(`npm run openapi failed: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
});
