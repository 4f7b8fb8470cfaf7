/**
 * Copies the web page's static files (web/public: HTML, CSS, icon) into dist/web, beside the
 * browser scripts that `tsc -p web/tsconfig.json` writes to dist/web/js. Part of `npm run build`.
 */
import fs from 'node:fs';
import path from 'node:path';

const root = path.join(__dirname, '..', '..');
const source = path.join(root, 'web', 'public');
const target = path.join(root, 'dist', 'web');

fs.mkdirSync(target, { recursive: true });
fs.cpSync(source, target, { recursive: true });
