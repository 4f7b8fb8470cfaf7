import type express from 'express';

// Lists the operations of an Express 5 app by walking its router stack, and compares them with an
// OpenAPI document, so that a route cannot exist undocumented or a documented route go missing.

/** One operation: an upper-case method and an OpenAPI path template such as /users/{id}. */
export interface Operation {
  method: string;
  path: string;
}

/** The fields of router@2 layers that the walk reads. */
interface Layer {
  rawPath?: unknown;
  handle: { name?: string; stack?: Layer[] };
  route?: { path: string; methods: Record<string, boolean> };
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/**
 * Returns every operation that the app routes. Routes give their methods; a router mounted with
 * `use` is walked under its mount path; a serve-static mount is a GET of `{mount}/{file}`. Other
 * middleware serves no method and path of its own, and the 405 and OPTIONS handlers that
 * `route.all` adds are not operations.
 */
export function listAppOperations(app: express.Express): Operation[] {
  return walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
}

function walk(stack: Layer[], prefix: string): Operation[] {
  const operations: Operation[] = [];
  for (const layer of stack) {
    if (layer.route) {
      const path = joinPaths(prefix, toTemplate(layer.route.path));
      for (const method of Object.keys(layer.route.methods).filter((name) => name !== '_all')) {
        operations.push({ method: method.toUpperCase(), path });
      }
      continue;
    }
    const mountPath = mountPathOf(layer);
    if (Array.isArray(layer.handle.stack)) operations.push(...walk(layer.handle.stack, joinPaths(prefix, mountPath)));
    else if (layer.handle.name === 'serveStatic') operations.push({ method: 'GET', path: joinPaths(joinPaths(prefix, mountPath), '/{file}') });
  }
  return operations;
}

function mountPathOf(layer: Layer): string {
  if (typeof layer.rawPath !== 'string') {
    throw new Error(`a router layer has no string rawPath (${String(layer.rawPath)}); this walk reads router@2's Layer`);
  }
  return toTemplate(layer.rawPath);
}

/** Turns Express parameters (`:id`, `*rest`) into OpenAPI ones (`{id}`, `{rest}`). */
function toTemplate(expressPath: string): string {
  return expressPath.replace(/[:*](\w+)/g, '{$1}');
}

function joinPaths(prefix: string, path: string): string {
  if (path === '/' || path === '') return prefix === '' ? '/' : prefix;
  return `${prefix === '/' ? '' : prefix}${path}`;
}

/** Returns every operation of an OpenAPI document. */
export function listDocumentOperations(document: { paths?: Record<string, object> }): Operation[] {
  return Object.entries(document.paths ?? {}).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((key) => HTTP_METHODS.includes(key))
      .map((method) => ({ method: method.toUpperCase(), path })),
  );
}

/**
 * Compares the app's operations with the document's, with parameter names ignored. Returns the
 * operations found only in the app (undocumented) and only in the document (not routed).
 */
export function compareOperations(app: Operation[], documented: Operation[]): { undocumented: string[]; notRouted: string[] } {
  const key = (operation: Operation) => `${operation.method} ${operation.path.replace(/\{[^}]*\}/g, '{}')}`;
  const appKeys = new Set(app.map(key));
  const documentKeys = new Set(documented.map(key));
  return {
    undocumented: [...appKeys].filter((operation) => !documentKeys.has(operation)).sort(),
    notRouted: [...documentKeys].filter((operation) => !appKeys.has(operation)).sort(),
  };
}
