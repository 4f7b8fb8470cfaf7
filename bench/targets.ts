/**
 * The targets that the benchmark reports against. A throughput target passes when its ratio meets
 * the threshold in every round; both sides of a ratio come from the same round.
 */
import { BenchResults, ServerId, TargetResult, bestModelOnly, findFigures, peerRequestsPerSecond } from './results';

/** Connection counts of the 32-instance points; the target takes the best of them. */
export const MULTI_INSTANCE_CONNECTIONS = [1, 8];
export const MULTI_INSTANCES = 32;

interface RatioTarget {
  id: string;
  description: string;
  threshold: number;
  unit: 'times' | 'percent';
  ratio(results: BenchResults, round: number): number | null;
}

function requestsPerSecond(results: BenchResults, round: number, server: ServerId, connections: number): number | null {
  return findFigures(results, round, server, 1, connections)?.requestsPerSecond ?? null;
}

function ratioOf(numerator: number | null, denominator: number | null): number | null {
  if (numerator === null || denominator === null || denominator === 0) return null;
  return numerator / denominator;
}

const RATIO_TARGETS: RatioTarget[] = [
  {
    id: 'peer-32',
    description: '32 connections, 1 instance/request, WORKERS=1, batching on, against the peer (its faster route)',
    threshold: 3,
    unit: 'times',
    ratio: (results, round) => ratioOf(requestsPerSecond(results, round, 'w1-on', 32), peerRequestsPerSecond(results, round, 32)),
  },
  {
    id: 'ceiling-32',
    description: '32 connections, 1 instance/request, WORKERS=1, batching on, against bare Express',
    threshold: 0.7,
    unit: 'percent',
    ratio: (results, round) => ratioOf(requestsPerSecond(results, round, 'w1-on', 32), requestsPerSecond(results, round, 'bare', 32)),
  },
  {
    id: 'batching-32',
    description: '32 connections, WORKERS=1: batching on against off',
    threshold: 1.3,
    unit: 'times',
    ratio: (results, round) => ratioOf(requestsPerSecond(results, round, 'w1-on', 32), requestsPerSecond(results, round, 'w1-off', 32)),
  },
  {
    id: 'batching-1',
    description: '1 connection, WORKERS=1: batching on against off',
    threshold: 0.9,
    unit: 'times',
    ratio: (results, round) => ratioOf(requestsPerSecond(results, round, 'w1-on', 1), requestsPerSecond(results, round, 'w1-off', 1)),
  },
  {
    id: 'peer-1',
    description: '1 connection, WORKERS=1, batching on, against the peer (its faster route)',
    threshold: 1.5,
    unit: 'times',
    ratio: (results, round) => ratioOf(requestsPerSecond(results, round, 'w1-on', 1), peerRequestsPerSecond(results, round, 1)),
  },
  {
    id: 'model-limit',
    description: `${MULTI_INSTANCES} instances/request (best of ${MULTI_INSTANCE_CONNECTIONS.join(' and ')} connections), WORKERS=1, batching on, against the model-only limit at its best batch size`,
    threshold: 0.6,
    unit: 'percent',
    ratio: (results, round) => {
      const samples = MULTI_INSTANCE_CONNECTIONS.map((connections) => findFigures(results, round, 'w1-on', MULTI_INSTANCES, connections)?.samplesPerSecond ?? null).filter(
        (value): value is number => value !== null,
      );
      return ratioOf(samples.length > 0 ? Math.max(...samples) : null, bestModelOnly(results, round)?.samplesPerSecond ?? null);
    },
  },
  {
    id: 'workers-64',
    description: '64 connections, 1 instance/request, batching on: WORKERS=2 against WORKERS=1',
    threshold: 1.3,
    unit: 'times',
    ratio: (results, round) => ratioOf(requestsPerSecond(results, round, 'w2-on', 64), requestsPerSecond(results, round, 'w1-on', 64)),
  },
];

// RSS may grow by less than this share between the first quarter of the memory run and its end.
const MAX_RSS_GROWTH = 0.1;

function statusOf(passed: boolean | null): TargetResult['status'] {
  if (passed === null) return 'NOT MEASURED';
  return passed ? 'PASS' : 'FAIL';
}

function formatRule(target: RatioTarget): string {
  return target.unit === 'percent' ? `>= ${Math.round(target.threshold * 100)}%` : `>= ${target.threshold}x`;
}

function evaluateRatioTarget(results: BenchResults, rounds: number[], target: RatioTarget): TargetResult {
  const values = rounds.map((round) => ({ round, value: target.ratio(results, round) }));
  const measured = values.filter((entry): entry is { round: number; value: number } => entry.value !== null);
  const status = statusOf(measured.length === 0 ? null : measured.every((entry) => entry.value >= target.threshold));
  const missing = values.length - measured.length;
  const note = missing > 0 && measured.length > 0 ? `not measured in ${missing} of ${values.length} rounds` : null;
  return { id: target.id, description: target.description, rule: formatRule(target), unit: target.unit, values, status, note };
}

function evaluateMemoryTargets(results: BenchResults): TargetResult[] {
  const memory = results.memory;
  const requests = memory?.requests ?? 0;
  const quarter = Math.round(requests / 4);

  const tensorDifference =
    memory?.afterWarmup && memory.atEnd ? memory.atEnd.numTensors - memory.afterWarmup.numTensors : null;
  const rssGrowth = memory?.atQuarter && memory.atEnd ? (memory.atEnd.rssBytes - memory.atQuarter.rssBytes) / memory.atQuarter.rssBytes : null;

  return [
    {
      id: 'tensors',
      description: `tf.memory().numTensors after ${requests} requests minus after warm-up`,
      rule: '= 0',
      unit: 'tensors',
      values: [{ round: null, value: tensorDifference }],
      status: statusOf(tensorDifference === null ? null : tensorDifference === 0),
      note: null,
    },
    {
      id: 'rss-growth',
      description: `RSS growth between request ${quarter} and request ${requests}`,
      rule: `< ${MAX_RSS_GROWTH * 100}%`,
      unit: 'percent',
      values: [{ round: null, value: rssGrowth }],
      status: statusOf(rssGrowth === null ? null : rssGrowth < MAX_RSS_GROWTH),
      note: null,
    },
  ];
}

/** Evaluates every target on the results of a run. */
export function evaluateTargets(results: BenchResults, rounds: number[]): TargetResult[] {
  return [...RATIO_TARGETS.map((target) => evaluateRatioTarget(results, rounds, target)), ...evaluateMemoryTargets(results)];
}
