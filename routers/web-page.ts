import path from 'node:path';
import express from 'express';
import createError from 'http-errors';
import { rejectOtherMethods } from '../middleware/method-not-allowed';

/**
 * Serves the web page at `/` and its files (scripts, styles, icon) from `directory`, the output
 * of `npm run build`. Mount it after the API routers, so that a file can never shadow a route.
 * A path that names no file falls through to the 404 problem. The Content-Security-Policy of the
 * page comes from middleware/security-headers.ts, like every response's.
 */
export function webPageRouter(directory: string): express.Router {
  const router = express.Router();
  const root = path.resolve(directory);

  const page = router.route('/');
  page.get(function webPageRoute(_req, res, next) {
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
    }),
  );
  return router;
}
