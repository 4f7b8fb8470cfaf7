import path from 'node:path';
import express from 'express';
import createError from 'http-errors';
import { rejectOtherMethods } from '../middleware/method-not-allowed';

// The page loads only files of this service, so it works offline, and an injected script or
// stylesheet from elsewhere is blocked. Drawings and chosen files are shown as blob: URLs.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "img-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function setPageHeaders(res: express.Response): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('X-Content-Type-Options', 'nosniff');
}

/**
 * Serves the web page at `/` and its files (scripts, styles, icon) from `directory`, the output
 * of `npm run build`. Mount it after the API routers, so that a file can never shadow a route.
 * A path that names no file falls through to the 404 problem.
 */
export function webPageRouter(directory: string): express.Router {
  const router = express.Router();
  const root = path.resolve(directory);

  const page = router.route('/');
  page.get(function webPageRoute(_req, res, next) {
    setPageHeaders(res);
    res.sendFile(path.join(root, 'index.html'), (error?: NodeJS.ErrnoException) => {
      // Once headers are out (the client went away mid-file), nothing more can be sent.
      if (!error || res.headersSent) return;
      if (error.code === 'ENOENT') {
        return next(createError(404, `the web page is not built: ${path.join(root, 'index.html')} is missing. Run npm run build`));
      }
      next(error);
    });
  });
  page.all(rejectOtherMethods(page));

  router.use(
    express.static(root, {
      index: false,
      // Without this, a request for a directory such as /js is redirected to /js/ instead of getting the 404.
      redirect: false,
      setHeaders: setPageHeaders,
    }),
  );
  return router;
}
