import * as tf from '@tensorflow/tfjs';

export const BACKEND_NAMES = ['node', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** Raised when a requested TF.js backend cannot be used. */
export class BackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendError';
  }
}

// tfjs-node registers its "tensorflow" backend on import. Its install downloads libtensorflow, so
// on machines without internet access npm skips it, and the import fails.
function tryLoadNodeBackend(): string | null {
  try {
    require('@tensorflow/tfjs-node');
    return null;
  } catch (error) {
    return (error as Error).message.split('\n')[0];
  }
}

/**
 * Activates a TF.js backend: the requested one, or tfjs-node when it loads and wasm otherwise.
 * Returns the backend name as tfjs reports it. Throws BackendError naming the backend and the fix.
 */
export async function selectBackend(requested: BackendName | undefined): Promise<string> {
  if (requested === undefined || requested === 'node') {
    const loadError = tryLoadNodeBackend();
    if (loadError === null) return activate('tensorflow', 'node');
    if (requested === 'node') {
      throw new BackendError(
        `TF_BACKEND=node, but @tensorflow/tfjs-node failed to load (${loadError}); ` +
          'install it with `npm install @tensorflow/tfjs-node` on a machine with internet access, or use TF_BACKEND=wasm',
      );
    }
  }

  if (requested === 'cpu') return activate('cpu', 'cpu');

  // Importing the wasm package registers the backend; the .wasm binaries ship inside the package.
  return withoutNewCrashHandlers(async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    return activate('wasm', 'wasm');
  });
}

const CRASH_EVENTS = ['uncaughtException', 'unhandledRejection'] as const;

/**
 * Runs `work` and removes the process-wide crash handlers it installed. The Emscripten runtime of
 * tfjs-backend-wasm 4.22 adds `uncaughtException` and `unhandledRejection` handlers that rethrow,
 * which would end the process with exit code 7 before the server's own handlers log the error
 * and flush the log file.
 */
async function withoutNewCrashHandlers<T>(work: () => Promise<T>): Promise<T> {
  const listenersOf = (event: string) => process.listeners(event as 'exit') as ((...args: unknown[]) => void)[];
  const before = new Map(CRASH_EVENTS.map((event) => [event, new Set(listenersOf(event))]));
  try {
    return await work();
  } finally {
    for (const event of CRASH_EVENTS) {
      for (const listener of listenersOf(event)) {
        if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
      }
    }
  }
}

async function activate(tfName: string, settingName: BackendName): Promise<string> {
  let activated: boolean;
  try {
    // setBackend resolves to false, rather than throwing, when the backend fails to initialise.
    activated = await tf.setBackend(tfName);
  } catch (error) {
    throw new BackendError(`TF.js backend "${settingName}" failed to initialise: ${(error as Error).message}`);
  }
  if (!activated) {
    throw new BackendError(`TF.js backend "${settingName}" failed to initialise; try TF_BACKEND=cpu`);
  }
  await tf.ready();
  return tf.getBackend();
}
