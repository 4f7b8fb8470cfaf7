import type { LogSummary, ShutdownSummary } from './log-summary';

// Routes and error groups beyond these are counted, not listed; --json lists them all.
const MAX_ROUTES_SHOWN = 25;
const MAX_ERRORS_SHOWN = 25;

/** Formats milliseconds as the two largest units: "2 d 3 h", "4 min 10 s", "850 ms". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['min', 60_000],
    ['s', 1000],
  ];
  const parts: string[] = [];
  let rest = Math.round(ms / 1000) * 1000;
  for (const [name, size] of units) {
    if (parts.length === 2) break;
    const count = Math.floor(rest / size);
    rest -= count * size;
    if (count > 0 || parts.length > 0) parts.push(`${count} ${name}`);
  }
  return parts.join(' ');
}

function formatMs(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
}

function formatTable(header: string[], rows: string[][], rightAligned: Set<number>): string[] {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const formatRow = (row: string[]) =>
    row
      .map((cell, column) => (rightAligned.has(column) ? cell.padStart(widths[column]) : cell.padEnd(widths[column])))
      .join('  ')
      .trimEnd();
  return [formatRow(header), ...rows.map(formatRow)].map((line) => `  ${line}`);
}

function formatShutdown(shutdown: ShutdownSummary): string {
  const uptime = typeof shutdown.uptimeMs === 'number' ? ` after ${formatDuration(shutdown.uptimeMs)}` : '';
  const workers = typeof shutdown.workers === 'number' ? `, ${shutdown.workers} workers` : '';
  const outcome = shutdown.forced === true ? 'forced by the shutdown timeout' : 'clean';
  return (
    `  ${shutdown.time ?? '-'}  ${String(shutdown.signal ?? '-')}${uptime}${workers}: ${String(shutdown.requestsServed ?? '-')} requests; ` +
    `tasks ${String(shutdown.tasksSucceeded ?? '-')} succeeded, ${String(shutdown.tasksFailed ?? '-')} failed, ` +
    `${String(shutdown.tasksCancelled ?? '-')} cancelled, ${shutdown.tasksInterrupted} interrupted; ` +
    `${String(shutdown.tasksLeftQueued ?? '-')} queued for the next start, interrupted ones included; ${outcome}`
  );
}

function formatCounts(counts: Record<string, number>, order: string[] = []): string {
  const keys = [...order.filter((key) => key in counts), ...Object.keys(counts).filter((key) => !order.includes(key)).sort()];
  return keys.map((key) => `${key} ${counts[key]}`).join(', ');
}

/** Formats a LogSummary as the text that `npm run logs` prints. */
export function formatSummary(summary: LogSummary): string {
  const lines: string[] = ['Files, oldest first:'];
  for (const { file, lines: count } of summary.files) lines.push(`  ${file}  ${count} lines`);
  if (summary.skippedLines.length > 0) {
    lines.push('', `Skipped lines (${summary.skippedLines.length}):`);
    for (const issue of summary.skippedLines) lines.push(`  ${issue.file}:${issue.line}  ${issue.problem}${issue.excerpt ? `: ${issue.excerpt}` : ''}`);
  }

  lines.push('');
  if (summary.firstTime !== null && summary.lastTime !== null) {
    const span = Date.parse(summary.lastTime) - Date.parse(summary.firstTime);
    lines.push(`Time span: ${summary.firstTime} to ${summary.lastTime} (${formatDuration(span)})`);
  } else {
    lines.push('Time span: no timestamped lines');
  }
  lines.push(`Lines: ${summary.records} (${formatCounts(summary.levels, ['error', 'warn', 'info', 'debug'])})`);

  const { requests } = summary;
  const aborted = requests.aborted > 0 ? `, of which ${requests.aborted} aborted by the client` : '';
  lines.push('', `Requests: ${requests.total}${aborted}`);
  if (requests.total > 0) lines.push(`  ${formatCounts(requests.byStatusClass)}`);
  if (summary.routes.length > 0) {
    lines.push('', 'Duration by route, in ms:');
    const shown = summary.routes.slice(0, MAX_ROUTES_SHOWN);
    const rows = shown.map((route) => [`${route.method} ${route.route}`, String(route.count), formatMs(route.p50Ms), formatMs(route.p95Ms), formatMs(route.p99Ms), formatMs(route.maxMs)]);
    lines.push(...formatTable(['route', 'count', 'p50', 'p95', 'p99', 'max'], rows, new Set([1, 2, 3, 4, 5])));
    if (summary.routes.length > shown.length) lines.push(`  and ${summary.routes.length - shown.length} more routes (--json lists them)`);
  }

  const errorCount = summary.errors.reduce((total, group) => total + group.count, 0);
  lines.push('', `Errors: ${errorCount} in ${summary.errors.length} ${summary.errors.length === 1 ? 'group' : 'groups'}`);
  const errorRows = summary.errors.slice(0, MAX_ERRORS_SHOWN).map((group) => [String(group.count), group.firstTime ?? '-', group.lastTime ?? '-', group.message]);
  if (errorRows.length > 0) lines.push(...formatTable(['count', 'first', 'last', 'message'], errorRows, new Set([0])));
  if (summary.errors.length > MAX_ERRORS_SHOWN) lines.push(`  and ${summary.errors.length - MAX_ERRORS_SHOWN} more groups (--json lists them)`);

  const { tasks, starts } = summary;
  lines.push(
    '',
    `Tasks: ${tasks.started} started, ${tasks.succeeded} succeeded, ${tasks.failed} failed, ${tasks.cancelled} cancelled, ` +
      `${tasks.interrupted} interrupted by a shutdown and requeued`,
  );

  lines.push('', `Starts: ${starts.count}`);
  if (starts.withoutShutdownSummary > 0) lines.push(`  ${starts.withoutShutdownSummary} ended without a shutdown summary before the next start (a crash or kill -9)`);
  if (starts.lastStillOpen) lines.push('  the last start has no shutdown summary: the service still runs, or it stopped without one');
  lines.push(`Shutdowns: ${summary.shutdowns.length}`);
  for (const shutdown of summary.shutdowns) lines.push(formatShutdown(shutdown));
  return lines.join('\n');
}
