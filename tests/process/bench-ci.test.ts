import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './helpers';

const BENCH_SCRIPT = path.join(ROOT, 'dist', 'scripts', 'bench.js');
const RESULTS_PATH = path.join(ROOT, 'bench', 'results.json');

function modifiedAt(file: string): number | null {
  return fs.existsSync(file) ? fs.statSync(file).mtimeMs : null;
}

test('benchmark exits 0 at once under CI', () => {
  const resultsBefore = modifiedAt(RESULTS_PATH);

  const run = spawnSync(process.execPath, [BENCH_SCRIPT], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, CI: 'true' },
    encoding: 'utf8',
    // A benchmark that started would run for minutes; this ends it, and the status checks fail.
    timeout: 20_000,
  });

  expect(run.status).toBe(0);
  expect(run.stdout).toContain('CI=true: benchmark skipped');
  expect(modifiedAt(RESULTS_PATH)).toBe(resultsBefore);
});
