import type { OpenAPI3 } from 'openapi-typescript';

/** Path of the API's TypeScript types that `npm run openapi` writes, for the web page's code. */
export const API_TYPES_FILE = 'web/src/api-types.ts';

/**
 * Renders TypeScript types of every path, operation and schema of an OpenAPI document with
 * openapi-typescript, as `npm run openapi` writes them to API_TYPES_FILE.
 */
export async function renderApiTypes(document: object): Promise<string> {
  // Loaded here rather than at the top, so that importing API_TYPES_FILE does not load it.
  const { default: openapiTS, COMMENT_HEADER, astToString } = await import('openapi-typescript');
  const ast = await openapiTS(document as OpenAPI3, { exportType: true });
  return `${COMMENT_HEADER}${astToString(ast)}`;
}

// Run as a program, it reads a document from standard input and writes its types to standard
// output. The tests run it so, because jest cannot load the ES modules that openapi-typescript
// requires, and Node.js 20.19 and later can.
if (require.main === module) {
  const chunks: Buffer[] = [];
  process.stdin.on('data', (chunk: Buffer) => chunks.push(chunk));
  process.stdin.on('end', () => {
    renderApiTypes(JSON.parse(Buffer.concat(chunks).toString('utf8')) as object)
      .then((types) => process.stdout.write(types))
      .catch((error: unknown) => {
        console.error(`rendering the API types failed: ${(error as Error).stack ?? String(error)}`);
        process.exitCode = 1;
      });
  });
}
