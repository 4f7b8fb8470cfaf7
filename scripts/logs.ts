/**
 * npm run logs: reads the service's JSON-lines log (app.log and its rotated files, plain or gzipped)
 * and prints a summary, or with line filters the matching lines. Exits 2 for invalid arguments,
 * such as a FILE|DIR that does not exist, and 1 when reading fails in a way it cannot report and
 * skip. `npm run logs -- --help` lists the arguments.
 */
import { LOGS_USAGE, LogArgumentError, LogQuery, parseLogArguments } from '../services/log-arguments';
import { formatRecordLine, isInTimeRange, matchesFilter, selectsLines } from '../services/log-filter';
import { LogReadIssue, LogTargetError, listLogFiles, readLogEntries } from '../services/log-reader';
import { formatSummary } from '../services/log-report';
import { LogSummarizer } from '../services/log-summary';

// Output goes out in blocks of about this many characters, because a write per line is slow for
// large logs.
const OUTPUT_BLOCK_CHARS = 64 * 1024;

/** Collects output lines and writes them in blocks, waiting when stdout is full. */
class OutputWriter {
  private block: string[] = [];
  private blockChars = 0;

  async writeLine(line: string): Promise<void> {
    this.block.push(line);
    this.blockChars += line.length + 1;
    if (this.blockChars >= OUTPUT_BLOCK_CHARS) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.block.length === 0) return;
    const text = `${this.block.join('\n')}\n`;
    this.block = [];
    this.blockChars = 0;
    if (!process.stdout.write(text)) await new Promise((resolve) => process.stdout.once('drain', resolve));
  }
}

function reportIssue(issue: LogReadIssue): void {
  process.stderr.write(`skipped ${issue.file}:${issue.line}: ${issue.problem}${issue.excerpt ? `: ${issue.excerpt}` : ''}\n`);
}

async function printMatchingLines(files: string[], query: LogQuery): Promise<void> {
  const output = new OutputWriter();
  let matched = 0;
  for await (const { record } of readLogEntries(files, reportIssue)) {
    if (!matchesFilter(record, query.filter)) continue;
    matched++;
    await output.writeLine(query.json ? JSON.stringify(record) : formatRecordLine(record));
  }
  await output.flush();
  if (matched === 0) process.stderr.write(`no line of ${files.join(', ')} matches the filters\n`);
}

async function printSummary(files: string[], query: LogQuery): Promise<void> {
  const summarizer = new LogSummarizer();
  for await (const entry of readLogEntries(files, (issue) => summarizer.noteIssue(issue))) {
    if (isInTimeRange(entry.record, query.filter)) summarizer.add(entry);
    else summarizer.noteLine(entry.file, entry.line);
  }
  const summary = summarizer.finish();
  const output = new OutputWriter();
  await output.writeLine(query.json ? JSON.stringify(summary, null, 2) : formatSummary(summary));
  await output.flush();
}

async function main(): Promise<number> {
  let query: LogQuery;
  let files: string[];
  try {
    query = parseLogArguments(process.argv.slice(2), { now: Date.now(), defaultTarget: process.env.LOG_DIR || 'logs' });
    if (query.help) {
      process.stdout.write(`${LOGS_USAGE}\n`);
      return 0;
    }
    files = listLogFiles(query.target);
  } catch (error) {
    if (!(error instanceof LogArgumentError || error instanceof LogTargetError)) throw error;
    process.stderr.write(`npm run logs: ${error.message}\n`);
    return 2;
  }

  if (selectsLines(query.filter)) await printMatchingLines(files, query);
  else await printSummary(files, query);
  return 0;
}

// A reader such as `head` that closes the pipe early ends the output; that is no failure.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(0);
});

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`npm run logs failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
