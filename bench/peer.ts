/**
 * The FastAPI + PyTorch peer: a uvicorn server that rebuilds the same TF.js network in PyTorch from
 * MODEL_DIR and runs one forward pass per request. It runs on Debian's Python, whose packages
 * python3-fastapi, python3-uvicorn and python3-torch provide its imports.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { StartOptions } from './processes';

export const PEER_PYTHON = '/usr/bin/python3';
const PEER_MODULE = 'fastapi_peer';
const CHECK_TIMEOUT_MS = 60_000;

export type PeerStatus = { available: true; versions: Record<string, string> } | { available: false; reason: string };

/** Checks that the peer's directory and Python packages are there, and returns their versions. */
export function checkPeer(peerDir: string): PeerStatus {
  if (!fs.existsSync(path.join(peerDir, `${PEER_MODULE}.py`))) {
    return { available: false, reason: `${PEER_MODULE}.py not found in ${peerDir}; pass --peer-dir PATH` };
  }
  if (!fs.existsSync(PEER_PYTHON)) {
    return { available: false, reason: `${PEER_PYTHON} not found; install python3 and the packages below` };
  }

  const script = [
    'import json, platform, fastapi, uvicorn, torch, pydantic',
    'print(json.dumps({"python": platform.python_version(), "fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__,',
    '  "torch": torch.__version__, "pydantic": pydantic.VERSION}))',
  ].join('\n');
  try {
    const output = execFileSync(PEER_PYTHON, ['-c', script], { encoding: 'utf8', timeout: CHECK_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
    return { available: true, versions: JSON.parse(output.trim().split('\n').pop() ?? '{}') as Record<string, string> };
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? (error as Error).message).trim().split('\n').pop();
    return {
      available: false,
      reason: `${PEER_PYTHON} cannot import the peer's packages (${stderr}); install them with ` +
        '`apt-get install -y python3-fastapi python3-uvicorn python3-torch`',
    };
  }
}

/** Returns how to start the peer with one uvicorn worker on 127.0.0.1:`port`, serving the model in `modelDir`. */
export function peerStartOptions(name: string, peerDir: string, modelDir: string, port: number, cpus: string): StartOptions {
  return {
    name,
    command: PEER_PYTHON,
    args: ['-m', 'uvicorn', `${PEER_MODULE}:app`, '--host', '127.0.0.1', '--port', String(port), '--workers', '1'],
    cwd: peerDir,
    // The peer's directory may be read-only, so Python must not try to write bytecode there.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', MODEL_DIR: modelDir, PYTHONDONTWRITEBYTECODE: '1' },
    cpus,
  };
}

/** One prediction as each server returns it. */
interface InferlinePrediction {
  probabilities: number[];
}
interface PeerPrediction {
  label: number;
  probs: number[];
}

export interface Agreement {
  instances: number;
  sameLabel: number;
  /** Largest difference between the two servers' probabilities for the same instance and label. */
  maxProbabilityDifference: number;
}

/** Compares the predictions of this service and of the peer for the same body. */
export function compareWithPeer(inferline: unknown, peer: unknown): Agreement {
  const ours = (inferline as { predictions: InferlinePrediction[] }).predictions;
  const theirs = (peer as { predictions: PeerPrediction[] }).predictions;
  if (!Array.isArray(ours) || !Array.isArray(theirs) || ours.length !== theirs.length) {
    throw new Error(`the two servers returned different numbers of predictions: ${ours?.length} and ${theirs?.length}`);
  }

  let sameLabel = 0;
  let maxProbabilityDifference = 0;
  ours.forEach((prediction, index) => {
    // The peer returns the index of the top output; the service returns the label at that index.
    const ourIndex = prediction.probabilities.indexOf(Math.max(...prediction.probabilities));
    if (ourIndex === theirs[index].label) sameLabel++;
    prediction.probabilities.forEach((probability, label) => {
      maxProbabilityDifference = Math.max(maxProbabilityDifference, Math.abs(probability - theirs[index].probs[label]));
    });
  });
  return { instances: ours.length, sameLabel, maxProbabilityDifference };
}
