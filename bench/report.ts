/**
 * Turns benchmark results into tables: padded text for the terminal, and the results section of
 * docs/benchmarks.md, which replaces whatever is between the two marker comments.
 */
import fs from 'node:fs';
import type { LoadFigures } from './load';
import type { MemoryReading } from './memory-server';
import { BenchResults, PointResult, ServerId, TargetResult, bestModelOnly, findFigures, peerRequestsPerSecond } from './results';

export const RESULTS_START = '<!-- results:start (written by npm run bench) -->';
export const RESULTS_END = '<!-- results:end -->';

interface Table {
  title: string;
  headers: string[];
  rows: string[][];
  notes: string[];
}

const MISSING = '–';
const MB = 1024 * 1024;

function fixed(value: number | null | undefined, digits: number): string {
  return value === null || value === undefined || !Number.isFinite(value) ? MISSING : value.toFixed(digits);
}

function milliseconds(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return MISSING;
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

function percent(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? MISSING : `${(value * 100).toFixed(0)}%`;
}

function times(value: number | null | undefined): string {
  return value === null || value === undefined || !Number.isFinite(value) ? MISSING : `${value.toFixed(2)}x`;
}

/** Joins one value per round as "a / b". */
function perRound(values: string[]): string {
  return values.join(' / ');
}

function rounds(results: BenchResults): number[] {
  return Array.from({ length: Number(results.options.rounds) }, (_, index) => index + 1);
}

function serverLabel(results: BenchResults, id: ServerId): string {
  return results.servers.find((server) => server.id === id)?.label ?? id;
}

function pointsOf(results: BenchResults, instancesPerRequest: number): { server: ServerId; connections: number }[] {
  const seen = new Map<string, { server: ServerId; connections: number }>();
  for (const point of results.points.filter((candidate: PointResult) => candidate.instancesPerRequest === instancesPerRequest)) {
    seen.set(`${point.server}/${point.connections}`, { server: point.server, connections: point.connections });
  }
  return [...seen.values()];
}

function machineLines(results: BenchResults): string[] {
  const { machine, pinning, peer } = results;
  const lines = [
    `date: ${results.date}`,
    `command: ${results.command}`,
    `machine: ${machine.cpuModel}, ${machine.cores} cores, ${(machine.memoryBytes / 1024 ** 3).toFixed(1)} GiB memory, ${machine.os}`,
    `node ${machine.node}, TF.js backend ${machine.backend ?? MISSING}, autocannon ${machine.autocannon}`,
    `model: ${machine.model ? `${machine.model.name} ${machine.model.version}` : MISSING}`,
    `load average (1, 5, 15 min) at start: ${machine.loadAverageAtStart.map((value) => value.toFixed(2)).join(', ')}; at end: ${machine.loadAverageAtEnd.map((value) => value.toFixed(2)).join(', ')}`,
    `pinning: ${pinning.enabled ? `load generator on core ${pinning.loadGeneratorCpus}, servers as listed below` : pinning.reason}`,
    `options: ${Object.entries(results.options).map(([key, value]) => `${key}=${String(value)}`).join(', ')}`,
    `total time: ${results.durationSeconds.toFixed(0)} s`,
    peer.available
      ? `peer: ${peer.dir}, ${Object.entries(peer.versions ?? {}).map(([name, version]) => `${name} ${version}`).join(', ')}`
      : `peer: not measured: ${peer.reason}`,
  ];
  if (peer.agreement) {
    const { instances, sameLabel, maxProbabilityDifference } = peer.agreement;
    lines.push(`peer agreement: same label for ${sameLabel} of ${instances} held-out digits, probabilities differ by at most ${maxProbabilityDifference.toExponential(1)}`);
  }
  if (results.options.quick) lines.push('QUICK MODE: a check that the benchmark runs; the figures are not a record.');
  if (machine.loadAverageAtStart[0] > 0.5) {
    lines.push(`NOTE: the load average was ${machine.loadAverageAtStart[0].toFixed(2)} at the start, so other processes used the CPU during the run.`);
  }
  return lines;
}

function modelOnlyTable(results: BenchResults): Table {
  const roundList = rounds(results);
  const batchSizes = [...new Set(results.modelOnly.flatMap((run) => run.figures.map((figure) => figure.batchSize)))];
  const rows = batchSizes.map((batchSize) => [
    String(batchSize),
    perRound(roundList.map((round) => fixed(results.modelOnly.find((run) => run.round === round)?.figures.find((figure) => figure.batchSize === batchSize)?.samplesPerSecond, 0))),
  ]);
  const best = roundList.map((round) => bestModelOnly(results, round));
  const notes = [`best batch size per round: ${perRound(best.map((figure) => (figure ? `${figure.batchSize} (${figure.samplesPerSecond.toFixed(0)} samples/s)` : MISSING)))}`];
  for (const run of results.modelOnly.filter((candidate) => candidate.error)) notes.push(`round ${run.round}: ${run.error}`);
  return { title: 'Model only: LoadedModel.predict in one process, no HTTP (samples/s per round)', headers: ['batch size', 'samples/s'], rows, notes };
}

function loadCells(results: BenchResults, server: ServerId, instancesPerRequest: number, connections: number, pick: (figures: LoadFigures) => string): string {
  return perRound(rounds(results).map((round) => {
    const figures = findFigures(results, round, server, instancesPerRequest, connections);
    return figures ? pick(figures) : MISSING;
  }));
}

function singleInstanceTable(results: BenchResults): Table {
  const rows = pointsOf(results, 1).map(({ server, connections }) => {
    const ofBare = (round: number) => {
      const ours = findFigures(results, round, server, 1, connections)?.requestsPerSecond;
      const bare = findFigures(results, round, 'bare', 1, connections)?.requestsPerSecond;
      return ours !== undefined && bare ? percent(ours / bare) : MISSING;
    };
    const ofPeer = (round: number) => {
      const ours = findFigures(results, round, server, 1, connections)?.requestsPerSecond;
      const peer = peerRequestsPerSecond(results, round, connections);
      return ours !== undefined && peer ? times(ours / peer) : MISSING;
    };
    return [
      serverLabel(results, server),
      String(connections),
      loadCells(results, server, 1, connections, (figures) => fixed(figures.requestsPerSecond, 0)),
      loadCells(results, server, 1, connections, (figures) => milliseconds(figures.p50Ms)),
      loadCells(results, server, 1, connections, (figures) => milliseconds(figures.p99Ms)),
      loadCells(results, server, 1, connections, (figures) => String(figures.errors)),
      loadCells(results, server, 1, connections, (figures) => String(figures.non2xx)),
      perRound(rounds(results).map(ofBare)),
      perRound(rounds(results).map(ofPeer)),
      loadCells(results, server, 1, connections, (figures) => fixed(figures.loadGeneratorCpuPercent, 0)),
    ];
  });
  const notes = pointErrors(results, 1);
  if (!results.peer.available) notes.unshift(`FastAPI + PyTorch peer: not measured: ${results.peer.reason}`);
  return {
    title: 'POST /predict, 1 instance per request (one value per round)',
    headers: ['server', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx', 'of bare', 'x peer', 'load gen CPU %'],
    rows,
    notes,
  };
}

function multiInstanceTable(results: BenchResults, instancesPerRequest: number): Table {
  const rows = pointsOf(results, instancesPerRequest).map(({ server, connections }) => {
    const ofModel = (round: number) => {
      const samples = findFigures(results, round, server, instancesPerRequest, connections)?.samplesPerSecond;
      const limit = bestModelOnly(results, round)?.samplesPerSecond;
      return samples !== undefined && limit ? percent(samples / limit) : MISSING;
    };
    return [
      serverLabel(results, server),
      String(connections),
      loadCells(results, server, instancesPerRequest, connections, (figures) => fixed(figures.samplesPerSecond, 0)),
      loadCells(results, server, instancesPerRequest, connections, (figures) => fixed(figures.requestsPerSecond, 0)),
      perRound(rounds(results).map(ofModel)),
      loadCells(results, server, instancesPerRequest, connections, (figures) => milliseconds(figures.p50Ms)),
      loadCells(results, server, instancesPerRequest, connections, (figures) => milliseconds(figures.p99Ms)),
      loadCells(results, server, instancesPerRequest, connections, (figures) => String(figures.errors)),
      loadCells(results, server, instancesPerRequest, connections, (figures) => String(figures.non2xx)),
      loadCells(results, server, instancesPerRequest, connections, (figures) => fixed(figures.loadGeneratorCpuPercent, 0)),
    ];
  });
  return {
    title: `POST /predict, ${instancesPerRequest} instances per request (one value per round)`,
    headers: ['server', 'conns', 'samples/s', 'req/s', 'of model-only best', 'p50 ms', 'p99 ms', 'errors', 'non-2xx', 'load gen CPU %'],
    rows,
    notes: pointErrors(results, instancesPerRequest),
  };
}

function pointErrors(results: BenchResults, instancesPerRequest: number): string[] {
  return results.points
    .filter((point) => point.instancesPerRequest === instancesPerRequest && point.error)
    .map((point) => `round ${point.round}, ${serverLabel(results, point.server)}, ${point.connections} connections: ${point.error}`);
}

function serversTable(results: BenchResults): Table {
  const rows = results.serverRuns.map((run) => [
    serverLabel(results, run.server),
    String(run.round),
    run.cpus,
    run.sharesLoadGeneratorCore ? 'yes' : 'no',
    run.childProcesses === null ? MISSING : String(run.childProcesses),
    run.rssAfterBytes === null ? MISSING : (run.rssAfterBytes / MB).toFixed(0),
    run.error ?? '',
  ]);
  return {
    title: 'Server processes',
    headers: ['server', 'round', 'cores', 'shares load gen core', 'child processes', 'RSS after load MB', 'error'],
    rows,
    notes: ['child processes: processes below the started one (cluster workers); RSS includes them.'],
  };
}

function memoryTable(results: BenchResults): Table {
  const memory = results.memory;
  if (!memory) return { title: 'Memory run', headers: ['reading'], rows: [], notes: ['not run'] };
  const quarter = Math.round(memory.requests / 4);
  const row = (name: string, requests: string, reading: MemoryReading | null) => [
    name,
    requests,
    reading ? (reading.rssBytes / MB).toFixed(1) : MISSING,
    reading ? (reading.heapUsedBytes / MB).toFixed(1) : MISSING,
    reading ? String(reading.numTensors) : MISSING,
    reading ? String(reading.numBytes) : MISSING,
  ];
  const statuses = Object.entries(memory.statusCounts).map(([status, count]) => `${status}: ${count}`).join(', ');
  const notes = [
    `${serverLabel(results, memory.server)} as an in-process app (bench/memory-server.ts), ${memory.connections} connections, ` +
      `${(memory.invalidShare * 100).toFixed(0)}% of the requests with an invalid instance (expected 400).`,
    `responses by status after warm-up: ${statuses || 'none'}; connection errors: ${memory.errors}`,
  ];
  if (memory.error) notes.push(`error: ${memory.error}`);
  return {
    title: 'Memory run',
    headers: ['reading', 'requests after warm-up', 'RSS MB', 'heap used MB', 'numTensors', 'tensor bytes'],
    rows: [
      row('after warm-up', `0 (${memory.warmupRequests} warm-up)`, memory.afterWarmup),
      row('first quarter', String(quarter), memory.atQuarter),
      row('end', String(memory.requests), memory.atEnd),
    ],
    notes,
  };
}

function targetValue(target: TargetResult, value: number | null): string {
  if (target.unit === 'percent') return percent(value);
  if (target.unit === 'tensors') return value === null ? MISSING : String(value);
  return times(value);
}

function targetsTable(results: BenchResults): Table {
  const rows = results.targets.map((target) => [
    target.description,
    target.rule,
    perRound(target.values.map((entry) => targetValue(target, entry.value))),
    target.status + (target.note ? ` (${target.note})` : ''),
  ]);
  return {
    title: 'Targets (a throughput target passes when it holds in every round)',
    headers: ['target', 'rule', 'value per round', 'status'],
    rows,
    notes: [],
  };
}

function allTables(results: BenchResults): Table[] {
  return [
    modelOnlyTable(results),
    singleInstanceTable(results),
    multiInstanceTable(results, 32),
    serversTable(results),
    memoryTable(results),
    targetsTable(results),
  ];
}

function renderText(table: Table): string {
  const widths = table.headers.map((header, column) => Math.max(header.length, ...table.rows.map((row) => row[column].length)));
  const line = (cells: string[]) => cells.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd();
  return [
    table.title,
    line(table.headers),
    line(widths.map((width) => '-'.repeat(width))),
    ...table.rows.map(line),
    ...table.notes.map((note) => `  ${note}`),
  ].join('\n');
}

function escapeCell(cell: string): string {
  return cell.replace(/\|/g, '\\|');
}

function renderMarkdown(table: Table): string {
  const lines = [`### ${table.title}`, ''];
  if (table.rows.length > 0) {
    lines.push(`| ${table.headers.map(escapeCell).join(' | ')} |`);
    lines.push(`| ${table.headers.map(() => '---').join(' | ')} |`);
    for (const row of table.rows) lines.push(`| ${row.map(escapeCell).join(' | ')} |`);
    lines.push('');
  }
  for (const note of table.notes) lines.push(`${note}  `);
  return lines.join('\n').trimEnd();
}

/** Returns the report for the terminal. */
export function formatTextReport(results: BenchResults): string {
  return [machineLines(results).join('\n'), ...allTables(results).map(renderText)].join('\n\n');
}

/** Returns the results section of docs/benchmarks.md, markers included. */
export function formatMarkdownSection(results: BenchResults): string {
  return [
    RESULTS_START,
    '',
    machineLines(results).map((line) => `${line}  `).join('\n'),
    '',
    ...allTables(results).map((table) => `${renderMarkdown(table)}\n`),
    RESULTS_END,
  ].join('\n');
}

/** Replaces the results section of the page at `docPath`, or appends one when the markers are missing. */
export function writeMarkdownSection(docPath: string, section: string): void {
  const current = fs.existsSync(docPath) ? fs.readFileSync(docPath, 'utf8') : '# Benchmarks\n';
  const start = current.indexOf(RESULTS_START);
  const end = current.indexOf(RESULTS_END);
  const updated =
    start !== -1 && end > start
      ? current.slice(0, start) + section + current.slice(end + RESULTS_END.length)
      : `${current.trimEnd()}\n\n## Results\n\n${section}\n`;
  fs.writeFileSync(docPath, updated);
}
