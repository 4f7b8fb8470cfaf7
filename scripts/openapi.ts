/**
 * Writes the OpenAPI document that the app serves at GET /openapi.json to openapi.json in the
 * current directory (the repository root under `npm run openapi`). A test fails while the committed
 * file differs from what this writes.
 */
import fs from 'node:fs';
import { serializeOpenApiDocument } from '../services/openapi';

const OUTPUT_FILE = 'openapi.json';

fs.writeFileSync(OUTPUT_FILE, serializeOpenApiDocument());
console.log(`wrote ${OUTPUT_FILE}`);
