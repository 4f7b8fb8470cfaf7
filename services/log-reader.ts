import fs from 'node:fs';
import path from 'node:path';
import { type Readable, pipeline } from 'node:stream';
import zlib from 'node:zlib';

/** One parsed JSON log line and where it was read. */
export interface LogEntry {
  file: string;
  /** Line number in the file, from 1; in a gzipped file, the line of the uncompressed text. */
  line: number;
  record: Record<string, unknown>;
}

/** A line that was skipped, or a file that could not be read to its end. */
export interface LogReadIssue {
  file: string;
  line: number;
  problem: string;
  /** The start of the skipped text. */
  excerpt: string;
}

/** Raised when the FILE|DIR argument names nothing that can be read. */
export class LogTargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LogTargetError';
  }
}

const NEWLINE = 0x0a;
const GZIP_MAGIC = [0x1f, 0x8b];
const EXCERPT_LENGTH = 80;
const ROTATED_NAME = /^app\.log\.(\d+)(\.gz)?$/;

/**
 * Lists the files to read, oldest first. A file is read alone. A directory means its `app.log`
 * and the rotated files beside it: `app.log.N` down to `app.log.1`, each plain or gzipped, then
 * `app.log`.
 */
export function listLogFiles(target: string): string[] {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(target);
  } catch {
    throw new LogTargetError(`${target} does not exist; pass a log file, or a directory with app.log such as the service's LOG_DIR`);
  }
  if (!stat.isDirectory()) return [target];

  const rotated = new Map<number, string>();
  for (const name of fs.readdirSync(target)) {
    const match = ROTATED_NAME.exec(name);
    if (!match) continue;
    const index = Number(match[1]);
    // While a tool gzips app.log.N, both forms exist and the .gz may be incomplete, so the plain one wins.
    if (rotated.has(index) && match[2] !== undefined) continue;
    rotated.set(index, name);
  }
  const names = [...rotated.entries()].sort(([a], [b]) => b - a).map(([, name]) => name);
  if (fs.existsSync(path.join(target, 'app.log'))) names.push('app.log');
  if (names.length === 0) throw new LogTargetError(`${target} contains no app.log or rotated app.log.N files`);
  return names.map((name) => path.join(target, name));
}

function isGzipped(file: string): boolean {
  const head = Buffer.alloc(2);
  const descriptor = fs.openSync(file, 'r');
  try {
    const read = fs.readSync(descriptor, head, 0, 2, 0);
    return read === 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1];
  } finally {
    fs.closeSync(descriptor);
  }
}

function openText(file: string): Readable {
  const stream = fs.createReadStream(file);
  if (!isGzipped(file)) return stream;
  // pipeline, unlike pipe, passes a read error of the file on to the gunzip stream.
  return pipeline(stream, zlib.createGunzip(), () => undefined);
}

/** Splits a stream into lines at newline bytes; the last line may lack its newline. */
async function* readLines(stream: Readable): AsyncGenerator<{ text: string; complete: boolean }> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of stream) {
    const data = rest.length > 0 ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
    let start = 0;
    // A newline byte never occurs inside a multi-byte UTF-8 character, so each line decodes alone.
    for (let end = data.indexOf(NEWLINE, start); end !== -1; end = data.indexOf(NEWLINE, start)) {
      yield { text: data.toString('utf8', start, end), complete: true };
      start = end + 1;
    }
    rest = data.subarray(start);
  }
  if (rest.length > 0) yield { text: rest.toString('utf8'), complete: false };
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Finds a whole record that follows a cut-off one on the same line. Versions of the service that
 * did not end a cut-off last line at startup appended the next start's first line to it.
 */
function findAppendedRecord(text: string): { cutOff: string; record: Record<string, unknown> } | null {
  for (let start = text.indexOf('{"', 1); start !== -1; start = text.indexOf('{"', start + 1)) {
    const record = parseObject(text.slice(start));
    if (record) return { cutOff: text.slice(0, start), record };
  }
  return null;
}

function excerptOf(text: string): string {
  return text.length > EXCERPT_LENGTH ? `${text.slice(0, EXCERPT_LENGTH)}…` : text;
}

/**
 * Reads the JSON lines of `files` in order. A line that is not a JSON object is reported to
 * `onIssue` with its file and line number and skipped: the last line of a file when a crash cut it
 * off, or any other line that is not JSON. A file that cannot be read to its end, such as a
 * truncated gzip file, is reported too, and reading goes on with the next file.
 */
export async function* readLogEntries(files: string[], onIssue: (issue: LogReadIssue) => void): AsyncGenerator<LogEntry> {
  for (const file of files) {
    let line = 0;
    try {
      for await (const { text, complete } of readLines(openText(file))) {
        line++;
        if (text.trim() === '') continue;

        const record = parseObject(text);
        if (record) {
          yield { file, line, record };
          continue;
        }

        const appended = text.startsWith('{') ? findAppendedRecord(text) : null;
        if (appended) {
          onIssue({ file, line, problem: 'cut off, followed on the same line by the next record', excerpt: excerptOf(appended.cutOff) });
          yield { file, line, record: appended.record };
          continue;
        }

        let problem = 'not JSON';
        if (!complete) problem = 'cut off at the end of the file';
        else if (text.startsWith('{')) problem = 'cut off';
        onIssue({ file, line, problem, excerpt: excerptOf(text) });
      }
    } catch (error) {
      onIssue({ file, line: line + 1, problem: `could not be read: ${(error as Error).message}`, excerpt: '' });
    }
  }
}
