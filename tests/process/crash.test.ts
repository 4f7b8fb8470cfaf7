import path from 'node:path';
import { readLog, startServer, stopLeftoverServers } from './helpers';

// The crash comes from a test-only preload, so product code contains no crash hook.
const PRELOAD = path.join(__dirname, 'crash-preload.js');

jest.setTimeout(60_000);

afterEach(async () => {
  await stopLeftoverServers();
});

describe('last-resort error handlers', () => {
  test.each([
    ['exception', 'uncaught exception', 'injected crash in a setImmediate callback'],
    ['rejection', 'unhandled promise rejection', 'injected unhandled rejection'],
  ])('%s is logged and exits 1', async (kind, message, errorText) => {
    const server = await startServer({ NODE_OPTIONS: `--require ${PRELOAD}`, CRASH_KIND: kind });

    const exit = await server.waitForExit();

    expect(exit.code).toBe(1);
    const log = readLog(server.logDir);
    const last = log[log.length - 1];
    expect(last.level).toBe('error');
    expect(last.message).toBe(message);
    expect(last.error).toBe(errorText);
    expect(last.stack).toContain('crash-preload.js');
  });
});
