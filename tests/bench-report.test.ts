import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LoadFigures, percentile } from '../bench/load';
import type { MemoryReading } from '../bench/memory-server';
import { parseBenchOptions } from '../bench/options';
import { RESULTS_END, RESULTS_START, writeMarkdownSection } from '../bench/report';
import { BenchResults, PointResult, ServerId, peerRequestsPerSecond } from '../bench/results';
import { evaluateTargets } from '../bench/targets';

function figures(requestsPerSecond: number, connections: number, instancesPerRequest = 1): LoadFigures {
  return {
    connections,
    instancesPerRequest,
    seconds: 4,
    requestsPerSecond,
    samplesPerSecond: requestsPerSecond * instancesPerRequest,
    p50Ms: 1,
    p99Ms: 2,
    responses: requestsPerSecond * 4,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    statusCounts: { 200: requestsPerSecond * 4 },
    loadGeneratorCpuPercent: 50,
  };
}

function point(round: number, server: ServerId, connections: number, requestsPerSecond: number, instancesPerRequest = 1): PointResult {
  return { round, server, connections, instancesPerRequest, figures: figures(requestsPerSecond, connections, instancesPerRequest), error: null };
}

function reading(rssBytes: number, numTensors: number): MemoryReading {
  return { rssBytes, heapUsedBytes: 1, numTensors, numBytes: 1, requestsServed: 0 };
}

/** Results of two rounds in which every throughput target passes. */
function passingResults(): BenchResults {
  const points: PointResult[] = [];
  for (const round of [1, 2]) {
    points.push(
      point(round, 'bare', 32, 4000),
      point(round, 'w1-on', 32, 3000),
      point(round, 'w1-off', 32, 2000),
      point(round, 'peer', 32, 900),
      point(round, 'peer-async', 32, 950),
      point(round, 'w1-on', 1, 1000),
      point(round, 'w1-off', 1, 1000),
      point(round, 'peer', 1, 600),
      point(round, 'w1-on', 64, 3000),
      point(round, 'w2-on', 64, 4500),
      point(round, 'w1-on', 1, 200, 32),
      point(round, 'w1-on', 8, 300, 32),
    );
  }
  return {
    date: '2026-01-01T00:00:00.000Z',
    command: 'npm run bench',
    options: { rounds: 2 },
    machine: {
      cpuModel: 'test',
      cores: 2,
      memoryBytes: 1,
      os: 'test',
      node: 'v20',
      backend: 'wasm',
      model: null,
      autocannon: '9',
      loadAverageAtStart: [0, 0, 0],
      loadAverageAtEnd: [0, 0, 0],
    },
    pinning: { enabled: true, reason: 'taskset', loadGeneratorCpus: '0' },
    servers: [],
    peer: { dir: '/peer', available: true, reason: null, versions: null, agreement: null },
    modelOnly: [1, 2].map((round) => ({
      round,
      backend: 'wasm',
      figures: [
        { batchSize: 1, calls: 100, seconds: 1, samplesPerSecond: 1000 },
        { batchSize: 32, calls: 100, seconds: 1, samplesPerSecond: 12000 },
      ],
      error: null,
    })),
    serverRuns: [],
    points,
    memory: {
      server: 'w1-on',
      connections: 32,
      warmupRequests: 1000,
      requests: 20000,
      invalidShare: 0.1,
      afterWarmup: reading(100, 8),
      atQuarter: reading(100, 8),
      atEnd: reading(105, 8),
      statusCounts: {},
      errors: 0,
      error: null,
    },
    targets: [],
    durationSeconds: 1,
  };
}

function statusOf(results: BenchResults, id: string): string | undefined {
  return evaluateTargets(results, [1, 2]).find((target) => target.id === id)?.status;
}

function setRequestsPerSecond(results: BenchResults, round: number, server: ServerId, connections: number, value: number): void {
  const found = results.points.find((candidate) => candidate.round === round && candidate.server === server && candidate.connections === connections && candidate.instancesPerRequest === 1);
  if (!found?.figures) throw new Error(`no point ${server} ${connections} in round ${round}`);
  found.figures.requestsPerSecond = value;
}

describe('benchmark percentile', () => {
  test('nearest rank of 1..100', () => {
    const values = Array.from({ length: 100 }, (_, index) => index + 1);

    expect(percentile(values, 0.5)).toBe(50);
    expect(percentile(values, 0.99)).toBe(99);
  });

  test('single value is every percentile', () => {
    expect(percentile([7], 0.5)).toBe(7);
    expect(percentile([7], 0.99)).toBe(7);
  });

  test('no values give NaN', () => {
    expect(percentile([], 0.5)).toBeNaN();
  });
});

describe('benchmark targets', () => {
  test('every target passes on passing results', () => {
    const targets = evaluateTargets(passingResults(), [1, 2]);

    for (const target of targets) expect({ id: target.id, status: target.status }).toEqual({ id: target.id, status: 'PASS' });
  });

  test('one failing round fails a target', () => {
    const results = passingResults();
    setRequestsPerSecond(results, 2, 'w1-off', 32, 2500);

    expect(statusOf(results, 'batching-32')).toBe('FAIL');
    expect(statusOf(results, 'peer-32')).toBe('PASS');
  });

  test('peer comparison uses the faster route', () => {
    const results = passingResults();

    expect(peerRequestsPerSecond(results, 1, 32)).toBe(950);
    expect(peerRequestsPerSecond(results, 1, 1)).toBe(600);
  });

  test('missing peer is not measured', () => {
    const results = passingResults();
    results.points = results.points.filter((candidate) => candidate.server !== 'peer' && candidate.server !== 'peer-async');

    expect(statusOf(results, 'peer-32')).toBe('NOT MEASURED');
    expect(statusOf(results, 'peer-1')).toBe('NOT MEASURED');
    expect(statusOf(results, 'ceiling-32')).toBe('PASS');
  });

  test('model limit takes the best connection count', () => {
    const results = passingResults();

    // 300 requests/s × 32 = 9600 samples/s, 80% of the best model-only figure (12000).
    expect(evaluateTargets(results, [1, 2]).find((target) => target.id === 'model-limit')?.values[0].value).toBeCloseTo(0.8);
  });

  test('leaked tensor fails the tensor target', () => {
    const results = passingResults();
    if (results.memory) results.memory.atEnd = reading(105, 9);

    expect(statusOf(results, 'tensors')).toBe('FAIL');
  });

  test('RSS growth of 10% fails', () => {
    const results = passingResults();
    if (results.memory) results.memory.atEnd = reading(110, 8);

    expect(statusOf(results, 'rss-growth')).toBe('FAIL');
  });

  test('failed memory run is not measured', () => {
    const results = passingResults();
    results.memory = null;

    expect(statusOf(results, 'tensors')).toBe('NOT MEASURED');
    expect(statusOf(results, 'rss-growth')).toBe('NOT MEASURED');
  });
});

describe('benchmark results section', () => {
  let directory: string;

  beforeEach(() => {
    directory = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-bench-doc-'));
  });

  afterEach(() => {
    fs.rmSync(directory, { recursive: true, force: true });
  });

  test('replaces only the text between markers', () => {
    const docPath = path.join(directory, 'benchmarks.md');
    fs.writeFileSync(docPath, `# Title\n\nbefore\n${RESULTS_START}\nold figures\n${RESULTS_END}\nafter\n`);

    writeMarkdownSection(docPath, `${RESULTS_START}\nnew figures\n${RESULTS_END}`);

    const text = fs.readFileSync(docPath, 'utf8');
    expect(text).toBe(`# Title\n\nbefore\n${RESULTS_START}\nnew figures\n${RESULTS_END}\nafter\n`);
  });

  test('appends a section when markers are missing', () => {
    const docPath = path.join(directory, 'benchmarks.md');
    fs.writeFileSync(docPath, '# Title\n');

    writeMarkdownSection(docPath, `${RESULTS_START}\nnew figures\n${RESULTS_END}`);

    const text = fs.readFileSync(docPath, 'utf8');
    expect(text.startsWith('# Title\n')).toBe(true);
    expect(text).toContain(`${RESULTS_START}\nnew figures\n${RESULTS_END}`);
  });
});

describe('benchmark options', () => {
  test('quick mode shortens the run', () => {
    const options = parseBenchOptions(['--quick'], '/repo');

    expect(options.rounds).toBe(1);
    expect(options.durationSeconds).toBe(1);
    expect(options.memoryRequests).toBe(2000);
  });

  test('explicit values override quick mode', () => {
    const options = parseBenchOptions(['--quick', '--rounds', '3', '--duration', '2.5'], '/repo');

    expect(options.rounds).toBe(3);
    expect(options.durationSeconds).toBe(2.5);
  });

  test('default peer directory is beside the repository', () => {
    expect(parseBenchOptions([], '/work/repo').peerDir).toBe(path.join('/work', 'shared', 'peer'));
  });

  test.each([
    [['--rounds', '0'], '--rounds must be a positive number'],
    [['--rounds', '1.5'], '--rounds must be a whole number'],
    [['--duration', 'abc'], '--duration must be a positive number'],
    [['--requests', '3'], '--requests must be at least 4'],
    [['--unknown'], "Unknown option '--unknown'"],
  ])('rejects %j', (argv, message) => {
    expect(() => parseBenchOptions(argv, '/repo')).toThrow(message);
  });
});
