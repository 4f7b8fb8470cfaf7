/**
 * Child process of the benchmark's memory run. It serves the app of app.ts, built from the same
 * services and environment variables as in server.ts, and replies to the parent's IPC message
 * "memory" with its RSS and tf.memory(). The server itself does not expose tf.memory(), and this
 * way it need not. Stops on SIGTERM.
 */
import type { Server } from 'node:http';
import * as tf from '@tensorflow/tfjs';
import { createApp } from '../app';
import { selectBackend } from '../services/backend';
import { loadConfig } from '../services/config';
import { openDatabase } from '../services/database';
import { Lifecycle } from '../services/lifecycle';
import { createLogger } from '../services/logger';
import { loadModel } from '../services/model';
import { TaskRunner } from '../services/task-runner';

/** The reply to the parent's "memory" message. */
export interface MemoryReading {
  rssBytes: number;
  heapUsedBytes: number;
  numTensors: number;
  numBytes: number;
  requestsServed: number;
}

async function startApp(): Promise<void> {
  const config = loadConfig();
  const log = createLogger({ level: config.LOG_LEVEL, logDir: config.LOG_DIR, console: config.LOG_CONSOLE });
  await selectBackend(config.TF_BACKEND);
  const db = openDatabase(config.DATABASE_PATH, config.DATABASE_BUSY_TIMEOUT_MS);
  const model = await loadModel(config.MODEL_DIR, config.MAX_BATCH_SIZE);

  const lifecycle = new Lifecycle();
  lifecycle.databaseOpen = true;
  lifecycle.modelLoaded = true;
  const runner = new TaskRunner({
    db,
    model,
    logger: log.logger,
    limits: { maxImageBytes: config.MAX_IMAGE_BYTES, maxImagePixels: config.MAX_IMAGE_PIXELS },
    chunkSize: config.TASK_CHUNK_SIZE,
    ttlSeconds: config.TASK_TTL_SECONDS,
  });
  const app = createApp({ config, logger: log.logger, db, model, runner, lifecycle });

  const server: Server = await new Promise((resolve, reject) => {
    const listening = app.listen(config.PORT, config.HOST, () => resolve(listening));
    listening.once('error', reject);
  });

  process.on('message', (message) => {
    if (message !== 'memory') return;
    const usage = process.memoryUsage();
    const { numTensors, numBytes } = tf.memory();
    const reading: MemoryReading = {
      rssBytes: usage.rss,
      heapUsedBytes: usage.heapUsed,
      numTensors,
      numBytes,
      requestsServed: lifecycle.requestsServed,
    };
    process.send?.(reading);
  });

  process.once('SIGTERM', () => {
    server.close(async () => {
      await runner.stop();
      db.close();
      await log.close();
      process.exit(0);
    });
  });
}

startApp().catch((error: unknown) => {
  process.stderr.write(`memory-run server failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
