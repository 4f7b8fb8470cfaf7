/**
 * Child process of the benchmark's memory run. It serves the app of app.ts, built from the same
 * services and environment variables as in server.ts, and replies to the parent's IPC message
 * "memory" with its RSS and tf.memory(). The server itself does not expose tf.memory(), and this
 * way it need not. Stops on SIGTERM.
 */
import type { Server } from 'node:http';
import * as tf from '@tensorflow/tfjs';
import { createApp } from '../app';
import { buildServices } from '../services/app-services';
import { selectBackend } from '../services/backend';
import { loadConfig } from '../services/config';
import { openDatabase } from '../services/database';
import { Lifecycle } from '../services/lifecycle';
import { createLogger } from '../services/logger';
import { loadModel } from '../services/model';

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
  const services = buildServices({ config, logger: log.logger, db, model, lifecycle });
  const app = createApp(services);

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
      await services.runner.stop();
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
