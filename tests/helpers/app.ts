import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type express from 'express';
import request from 'supertest';
import { createApp } from '../../app';
import { AppServices, buildServices } from '../../services/app-services';
import { selectBackend } from '../../services/backend';
import { loadConfig } from '../../services/config';
import { openDatabase } from '../../services/database';
import { Lifecycle } from '../../services/lifecycle';
import { AppLogger, createLogger } from '../../services/logger';
import { LoadedModel, loadModel } from '../../services/model';
import { inspectResponses } from './response-check';

export const MODEL_DIR = path.join(__dirname, '..', '..', 'models', 'digits');

let sharedModel: Promise<LoadedModel> | null = null;

/** Loads the shipped model once per test file, on the wasm backend as `npm start` uses without tfjs-node. */
export function getModel(): Promise<LoadedModel> {
  sharedModel ??= selectBackend('wasm').then(() => loadModel(MODEL_DIR, 32));
  return sharedModel;
}

export interface TestApp {
  app: express.Express;
  services: AppServices;
  log: AppLogger;
  logDir: string;
  /** Stops the task runner, closes the database and the log file, and removes the temporary files. */
  close(): Promise<void>;
}

/**
 * Builds the real app on the real model, a real SQLite database in a temporary directory and a
 * log file there. `env` overrides configuration variables, as the environment would. The app
 * checks every response against the OpenAPI document.
 */
export async function startTestApp(env: Record<string, string> = {}, model?: LoadedModel): Promise<TestApp> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-test-'));
  const config = loadConfig({ DATABASE_PATH: path.join(directory, 'app.db'), LOG_DIR: directory, LOG_CONSOLE: 'false', ...env });
  const log = createLogger({
    level: 'debug',
    logDir: config.LOG_DIR,
    console: false,
    rotation: { maxBytes: config.LOG_MAX_BYTES, maxFiles: config.LOG_MAX_FILES },
  });
  const db = openDatabase(config.DATABASE_PATH, config.DATABASE_BUSY_TIMEOUT_MS);
  const loadedModel = model ?? (await getModel());
  const lifecycle = new Lifecycle();
  lifecycle.modelLoaded = true;
  lifecycle.databaseOpen = true;

  // Each app gets its own batcher, so that its MAX_BATCH_SIZE, MAX_BATCH_DELAY_MS and
  // MAX_QUEUED_INPUTS apply, while the model itself is loaded once per test file.
  const services = buildServices({ config, logger: log.logger, db, model: loadedModel, lifecycle });
  const { runner } = services;

  return {
    // Every response is checked against the OpenAPI document; tests/helpers/fail-on-bad-responses.ts
    // fails the test that received one that breaks it.
    app: createApp(services, { inspectResponses: inspectResponses() }),
    services,
    log,
    logDir: directory,
    async close() {
      await runner.stop();
      db.close();
      await log.close();
      fs.rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** Reads the JSON lines of a test app's log file, after the lines logged so far are written. */
export async function readLogLines(testApp: TestApp): Promise<Record<string, unknown>[]> {
  // The log file writes the lines of one event-loop turn on the next turn.
  await new Promise((resolve) => setImmediate(resolve));
  const file = path.join(testApp.logDir, 'app.log');
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Returns the access line of the request with id `requestId`, once the log file contains it; fails after 5 s. */
export async function waitForAccessLine(testApp: TestApp, requestId: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const line = (await readLogLines(testApp)).find((entry) => entry.message === 'request completed' && entry.requestId === requestId);
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`access line of request ${requestId} not in the log after 5000 ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Creates a user through the API and returns its id and bearer header value. */
export async function signUp(app: express.Express, username: string): Promise<{ id: string; token: string; auth: string }> {
  const response = await request(app).post('/users').send({ username }).expect(201);
  return { id: response.body.id, token: response.body.token, auth: `Bearer ${response.body.token}` };
}

/** Polls a task until it leaves queued and running, or fails the test after `timeoutMs`. */
export async function waitForTask(app: express.Express, taskId: string, auth?: string, timeoutMs = 60_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const call = request(app).get(`/tasks/${taskId}`);
    if (auth) call.set('Authorization', auth);
    const response = await call.expect(200);
    if (response.body.status !== 'queued' && response.body.status !== 'running') return response.body;
    if (Date.now() > deadline) throw new Error(`task ${taskId} still ${response.body.status} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Asserts the RFC 9457 problem details shape of an error response. */
export function expectProblem(response: request.Response, status: number): void {
  expect(response.status).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.body.status).toBe(status);
  expect(response.body.type).toBe('about:blank');
  expect(typeof response.body.title).toBe('string');
  expect(typeof response.body.detail).toBe('string');
  expect(typeof response.body.instance).toBe('string');
  expect(response.body.requestId).toBe(response.headers['x-request-id']);
  expect(response.text).not.toMatch(/<html/i);
  // A stack frame such as "at handler (/app/routers/order.ts:12:5)", raw or escaped inside JSON.
  expect(response.text).not.toMatch(/\bat \S+ \(\S+:\d+:\d+\)|\bat \/\S+:\d+:\d+/);
}
