import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BrowserContext, Page, Response, chromium } from 'playwright-core';
import { recordResponse } from '../helpers/response-check';
import { ROOT, ServerProcess, startServer, stopLeftoverServers } from '../process/helpers';

export const SCREENSHOT_DIR = path.join(ROOT, 'test-results', 'browser');

// Without the networking flags, Chromium keeps trying to reach the internet (component updates,
// sync, background requests), and test machines may reach only package registries.
const LAUNCH_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const DEBIAN_CHROMIUM = '/usr/bin/chromium';

const INSTALL_STEPS =
  'Install it with `apt-get install -y chromium` (Debian, Ubuntu) or `npx playwright-core install chromium`, ' +
  'or set CHROMIUM_PATH to a Chromium or Chrome binary.';

/**
 * Finds a Chromium binary: CHROMIUM_PATH, then Debian's /usr/bin/chromium, then the browser that
 * `playwright-core install chromium` downloads. Returns null when there is none, and throws when
 * CHROMIUM_PATH names a file that does not exist.
 */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.CHROMIUM_PATH) {
    if (!fs.existsSync(env.CHROMIUM_PATH)) throw new Error(`CHROMIUM_PATH=${env.CHROMIUM_PATH} does not exist. Unset it or point it to a Chromium binary`);
    return env.CHROMIUM_PATH;
  }
  if (fs.existsSync(DEBIAN_CHROMIUM)) return DEBIAN_CHROMIUM;
  const downloaded = chromium.executablePath();
  return fs.existsSync(downloaded) ? downloaded : null;
}

const chromiumPath = findChromium();
if (!chromiumPath && process.env.CI !== 'true') {
  // Written to stderr directly, because jest drops the console output of a file whose tests are all skipped.
  process.stderr.write(`Chromium was not found, so the browser tests are skipped. ${INSTALL_STEPS} With CI=true they fail instead.\n`);
}

/**
 * `describe` when Chromium is installed or CI=true, else `describe.skip`. Under CI=true without a
 * browser the tests run, and openPage fails them with the install steps.
 */
export const describeInBrowser: jest.Describe = chromiumPath || process.env.CI === 'true' ? describe : describe.skip;

/** A Chromium page with its own profile, and the console errors it has logged so far. */
export interface BrowserPage {
  page: Page;
  context: BrowserContext;
  /** Console errors and uncaught exceptions, except failed responses announced with expectFailedResponse. */
  consoleErrors: string[];
  /**
   * Declares that the page will get an error response with `status` from `pathname`. Chromium logs
   * each as "Failed to load resource" at error level, and this one is expected.
   */
  expectFailedResponse(status: number, pathname: string): void;
  screenshot(name: string): Promise<void>;
  /** Closes the browser and removes its profile directory. */
  close(): Promise<void>;
}

const openPages = new Set<BrowserPage>();

/**
 * Launches headless Chromium with a fresh profile (`--user-data-dir` in a temporary directory) and
 * opens the page at `baseUrl` (or at `options.path` below it). The locale and time zone are fixed, so that money and dates are
 * formatted the same on every machine.
 */
export async function openPage(baseUrl: string, options: { viewport?: { width: number; height: number }; hasTouch?: boolean; path?: string } = {}): Promise<BrowserPage> {
  if (!chromiumPath) throw new Error(`Chromium was not found, and with CI=true the browser tests must run. ${INSTALL_STEPS}`);

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: LAUNCH_FLAGS,
    viewport: options.viewport ?? { width: 1280, height: 900 },
    hasTouch: options.hasTouch ?? false,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);

  const consoleErrors: string[] = [];
  const expected: { status: number; pathname: string }[] = [];
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const url = message.location().url;
    const pathname = url ? new URL(url).pathname : '';
    const index = expected.findIndex((entry) => entry.pathname === pathname && message.text().includes(`status of ${entry.status} `));
    if (index >= 0) {
      expected.splice(index, 1);
      return;
    }
    consoleErrors.push(`${message.text()} (${url})`);
  });
  page.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.stack ?? error.message}`));

  // Every response the page gets from the server is checked against the OpenAPI document; close()
  // waits for the checks, because reading a body is asynchronous.
  const responseChecks: Promise<void>[] = [];
  page.on('response', (response) => {
    if (response.url().startsWith(`${baseUrl}/`)) responseChecks.push(checkPageResponse(response));
  });

  const browserPage: BrowserPage = {
    page,
    context,
    consoleErrors,
    expectFailedResponse(status, pathname) {
      expected.push({ status, pathname });
    },
    async screenshot(name) {
      fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
      await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
    },
    async close() {
      openPages.delete(browserPage);
      await Promise.all(responseChecks);
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
  openPages.add(browserPage);

  await page.goto(`${baseUrl}${options.path ?? '/'}`);
  return browserPage;
}

async function checkPageResponse(response: Response): Promise<void> {
  // A response whose page has navigated away has no body to read; its status is still checked.
  const body = await response.body().catch(() => Buffer.alloc(0));
  const { pathname, search } = new URL(response.url());
  recordResponse({ method: response.request().method(), url: pathname + search, status: response.status(), headers: response.headers(), body });
}

/** Closes every browser that a test left open. Call it in afterEach. */
export async function closeLeftoverPages(): Promise<void> {
  for (const browserPage of [...openPages]) await browserPage.close();
}

/**
 * Registers jest hooks that start the built server before the tests of a file and stop it after
 * them, and close the browsers each test leaves open. Returns the running server's base URL.
 * TASK_CHUNK_SIZE=1 makes a background task store its progress after every item, so that a large
 * order runs long enough to watch and cancel.
 */
export function usePageServer(timeoutMs: number): () => string {
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    server = await startServer({ TASK_CHUNK_SIZE: '1' });
  }, timeoutMs);

  afterEach(closeLeftoverPages);

  afterAll(async () => {
    if (server && server.child.exitCode === null) {
      server.child.kill('SIGTERM');
      await server.waitForExit();
    }
    await stopLeftoverServers();
  }, timeoutMs);

  return () => {
    if (!server) throw new Error('the server has not started');
    return server.baseUrl;
  };
}

export type PointerKind = 'mouse' | 'touch' | 'pen';

/**
 * Draws one stroke on the drawing pad through `points`, given as shares (0..1) of the canvas
 * width and height. Mouse strokes use Playwright's mouse. Touch and pen strokes go through the
 * DevTools protocol, because Playwright has no API for them. Each is a real pointer event in the page.
 */
export async function drawStroke(page: Page, points: [number, number][], kind: PointerKind = 'mouse'): Promise<void> {
  const box = await page.locator('#drawing-pad').boundingBox();
  if (!box) throw new Error('the drawing pad is not visible');
  const positions = points.map(([x, y]) => ({ x: box.x + x * box.width, y: box.y + y * box.height }));
  const steps = interpolate(positions, 10);

  if (kind === 'mouse') {
    await page.mouse.move(steps[0].x, steps[0].y);
    await page.mouse.down();
    for (const step of steps.slice(1)) await page.mouse.move(step.x, step.y);
    await page.mouse.up();
    return;
  }

  const devtools = await page.context().newCDPSession(page);
  try {
    if (kind === 'touch') {
      await devtools.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [steps[0]] });
      for (const step of steps.slice(1)) await devtools.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [step] });
      await devtools.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    } else {
      const pen = { pointerType: 'pen' as const, button: 'left' as const };
      await devtools.send('Input.dispatchMouseEvent', { type: 'mousePressed', ...steps[0], ...pen, buttons: 1, clickCount: 1, force: 0.5 });
      for (const step of steps.slice(1)) await devtools.send('Input.dispatchMouseEvent', { type: 'mouseMoved', ...step, ...pen, buttons: 1, force: 0.5 });
      const last = steps[steps.length - 1];
      await devtools.send('Input.dispatchMouseEvent', { type: 'mouseReleased', ...last, ...pen, buttons: 0, clickCount: 1 });
    }
  } finally {
    await devtools.detach();
  }
}

/** Adds `perSegment` evenly spaced points on each segment, as a hand moving across the canvas would. */
function interpolate(points: { x: number; y: number }[], perSegment: number): { x: number; y: number }[] {
  const result = [points[0]];
  for (let i = 1; i < points.length; i++) {
    const from = points[i - 1];
    const to = points[i];
    for (let step = 1; step <= perSegment; step++) {
      const share = step / perSegment;
      result.push({ x: from.x + (to.x - from.x) * share, y: from.y + (to.y - from.y) * share });
    }
  }
  return result;
}

/** A vertical stroke down the middle of the canvas: the digit 1. */
export const ONE: [number, number][][] = [
  [
    [0.5, 0.15],
    [0.5, 0.85],
  ],
];

/** A bar along the top and a diagonal down to the bottom left: the digit 7. */
export const SEVEN: [number, number][][] = [
  [
    [0.25, 0.2],
    [0.75, 0.2],
    [0.4, 0.85],
  ],
];

/** An upright ellipse: the digit 0. */
export const ZERO: [number, number][][] = [
  Array.from({ length: 25 }, (_, i): [number, number] => {
    const angle = (i / 24) * 2 * Math.PI;
    return [0.5 + 0.22 * Math.sin(angle), 0.5 - 0.33 * Math.cos(angle)];
  }),
];

/** Draws every stroke of a digit. */
export async function drawDigit(page: Page, strokes: [number, number][][], kind: PointerKind = 'mouse'): Promise<void> {
  for (const stroke of strokes) await drawStroke(page, stroke, kind);
}
