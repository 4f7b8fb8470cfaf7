import fs from 'node:fs';
import path from 'node:path';

/**
 * Creates `directory` and its missing parents, as `mkdir -p` does, one level at a time from the
 * deepest one that exists. Throws the error of the first level that cannot be created.
 *
 * Node's `mkdirSync(directory, { recursive: true })` spins forever when mkdir of a child fails with
 * ENOENT although its parent exists, because it takes ENOENT to mean a missing parent. /proc
 * fails that way, so `/proc/logs` hung the start at full CPU (seen with Node 20.20). Here each
 * level is created once, without `recursive`, so that error is thrown instead.
 */
export function createDirectories(directory: string): void {
  const missing: string[] = [];
  let current = path.resolve(directory);
  while (!fs.existsSync(current)) {
    missing.push(current);
    const parent = path.dirname(current);
    if (parent === current) break;
    current = parent;
  }

  for (const level of missing.reverse()) {
    try {
      fs.mkdirSync(level);
    } catch (error) {
      // Another process created it meanwhile, or it is a dangling symbolic link: the next level,
      // or the caller's open, reports what it really is.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}
