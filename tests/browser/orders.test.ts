import type { Page } from 'playwright-core';
import { signUp } from '../process/helpers';
import { ONE, SEVEN, ZERO, describeInBrowser, drawDigit, openPage, usePageServer } from './helpers';

// A browser start, sign-up and an order. The cancelled order of 1000 items takes a few seconds.
const TEST_TIMEOUT_MS = 90_000;

async function signUpOnPage(page: Page, username: string): Promise<void> {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Username').press('Enter');
  await page.getByText(`Signed in as ${username}`).waitFor();
}

async function addDrawing(page: Page, strokes: [number, number][][], copies = 1): Promise<void> {
  await drawDigit(page, strokes);
  await page.getByLabel('Copies of the drawing').fill(String(copies));
  await page.getByRole('button', { name: 'Add drawing to order' }).click();
}

/** Returns the rows of the order table as [item, status, digit, confidence] texts. */
async function orderRows(page: Page): Promise<string[][]> {
  const rows = page.locator('#order-view tbody tr');
  const count = await rows.count();
  const result: string[][] = [];
  for (let i = 0; i < count; i++) result.push(await rows.nth(i).locator('td').allTextContents());
  return result;
}

// Locator waits, because the page's Content-Security-Policy blocks the eval that waitForFunction uses.
async function waitForOrderCount(page: Page, count: number): Promise<void> {
  await page.locator('#order-list li').nth(count - 1).waitFor();
  expect(await page.locator('#order-list li').count()).toBe(count);
}

describeInBrowser('web page: orders', () => {
  const baseUrl = usePageServer(TEST_TIMEOUT_MS);

  test(
    'order of three drawings shows predictions and total',
    async () => {
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;
      await signUpOnPage(page, 'three-drawings');

      await addDrawing(page, ONE);
      await addDrawing(page, SEVEN);
      await addDrawing(page, ZERO);
      await page.getByText('The order has 3 items.').waitFor();
      await browserPage.screenshot('order-basket');
      await page.getByRole('button', { name: 'Place order' }).click();
      await page.locator('#order-view .bill').waitFor();
      await waitForOrderCount(page, 1);
      await browserPage.screenshot('order-completed');

      const rows = await orderRows(page);
      expect(rows.map((row) => row.slice(0, 3))).toEqual([
        ['1', 'classified', '1'],
        ['2', 'classified', '7'],
        ['3', 'classified', '0'],
      ]);
      expect(await page.locator('#order-view h3').textContent()).toMatch(/: completed$/);
      expect(await page.evaluate('document.activeElement.tagName')).toBe('H3');
      expect(await page.locator('#order-view .bill').textContent()).toBe('Bill: 3 items at $0.25: $0.75');
      expect(await page.getByText('The order has no items yet.').count()).toBe(1);
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'large order progress reaches 100%',
    async () => {
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;
      await signUpOnPage(page, 'large-order');

      // 40 items is more than the default SYNC_MAX_ITEMS of 16, so the order becomes a background task.
      await addDrawing(page, ONE, 40);
      await page.getByRole('button', { name: 'Place order' }).click();
      await page.getByText('Finished: 40 of 40 items (100.0%).').waitFor();
      await page.locator('#order-view .bill').waitFor();
      await browserPage.screenshot('large-order-completed');

      const progress = page.getByRole('progressbar');
      expect(await progress.getAttribute('value')).toBe('40');
      expect(await progress.getAttribute('max')).toBe('40');
      expect(await page.locator('#order-view h3').textContent()).toMatch(/: completed$/);
      const rows = await orderRows(page);
      expect(rows).toHaveLength(40);
      expect(rows.every((row) => row[1] === 'classified' && row[2] === '1')).toBe(true);
      expect(await page.locator('#order-view .bill').textContent()).toBe('Bill: 40 items at $0.25: $10.00');
      expect(await page.locator('#order-view .item-counts').textContent()).toBe('40 items: 40 classified.');
      expect(await page.getByRole('button', { name: 'Cancel order' }).isHidden()).toBe(true);
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'cancel stops a large order',
    async () => {
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;
      await signUpOnPage(page, 'cancelled-order');

      // 1000 items at TASK_CHUNK_SIZE=1 run for seconds, so the cancel lands while the task runs.
      await addDrawing(page, ONE, 1000);
      await page.getByRole('button', { name: 'Place order' }).click();
      await page.getByText(/^Classifying in the background: [1-9]\d* of 1000 items/).waitFor();
      await browserPage.screenshot('large-order-running');
      await page.getByRole('button', { name: 'Cancel order' }).click();
      await page.getByText('Cancelled.', { exact: true }).waitFor();
      await browserPage.screenshot('large-order-cancelled');

      expect(await page.locator('#order-view h3').textContent()).toMatch(/: cancelled$/);
      expect(await page.locator('#order-view .bill').textContent()).toBe('Bill: 0 items at $0.25: $0.00');
      expect(await page.locator('#order-view .item-counts').textContent()).toMatch(/^1000 items: \d+ classified, \d+ cancelled\.$/);
      expect(await page.locator('#order-view tbody tr').count()).toBe(50);
      await page.getByRole('button', { name: 'Show all 1000 items' }).click();
      expect(await page.locator('#order-view tbody tr').count()).toBe(1000);
      expect(Number(await page.getByRole('progressbar').getAttribute('value'))).toBeLessThan(1000);
      expect(await page.locator('#cancel-error').textContent()).toBe('');
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'empty order shows the API error',
    async () => {
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;
      await signUpOnPage(page, 'empty-order');
      browserPage.expectFailedResponse(400, '/orders');

      await page.getByRole('button', { name: 'Place order' }).click();
      const alert = page.locator('#order-error');
      await alert.locator('p').first().waitFor();
      await browserPage.screenshot('order-empty-error');

      const text = await alert.textContent();
      expect(text).toContain('Could not place the order. The multipart body has no files; attach one or more images.');
      expect(await alert.locator('li').allTextContents()).toEqual(['items: at least one file is required']);
      expect(text).toMatch(/Error 400 Bad Request\. Request id [0-9a-f-]{36}: quote it/);
      expect(await page.locator('#order-view').textContent()).toBe('');
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'order without sign-up asks to sign up',
    async () => {
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;

      await page.getByRole('button', { name: 'Place order' }).click();

      expect(await page.locator('#order-error').textContent()).toBe('Could not place the order. Orders belong to a user: sign up at the top of the page first.');
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test.each<[string, string, number, string]>([
    ['invalid', 'Not Valid!', 400, 'Could not sign up. Username: may contain only a-z, 0-9, "_" and "-".'],
    ['taken', 'taken-name', 409, 'Could not sign up. Username "taken-name" is already taken; choose another.'],
  ])(
    'sign-up with %s username shows the error',
    async (caseName, username, status, expected) => {
      if (status === 409) await signUp(baseUrl(), username);
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;
      browserPage.expectFailedResponse(status, '/users');

      await page.getByLabel('Username').fill(username);
      await page.getByRole('button', { name: 'Sign up' }).click();
      const alert = page.locator('#account-error');
      await alert.locator('p').first().waitFor();
      await browserPage.screenshot(`sign-up-${caseName}`);

      expect(await alert.locator('p').first().textContent()).toBe(expected);
      expect(await alert.locator('.problem-meta').textContent()).toMatch(new RegExp(`^Error ${status} .+ Request id [0-9a-f-]{36}`));
      expect(await page.getByLabel('Username').getAttribute('aria-invalid')).toBe('true');
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'earlier orders are listed and opened',
    async () => {
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;
      await signUpOnPage(page, 'order-history');
      await addDrawing(page, SEVEN);
      await page.getByRole('button', { name: 'Place order' }).click();
      await waitForOrderCount(page, 1);
      await addDrawing(page, ONE, 2);
      await page.getByRole('button', { name: 'Place order' }).click();
      await waitForOrderCount(page, 2);

      // The token is kept in localStorage: after a reload the user is still signed in.
      await page.reload();
      await page.getByText('Signed in as order-history').waitFor();
      await waitForOrderCount(page, 2);
      const entries = await page.locator('#order-list li').allTextContents();
      await page.locator('#order-list button').nth(1).click();
      await page.locator('#order-view .bill').waitFor();
      await browserPage.screenshot('order-history-opened');

      expect(entries[0]).toMatch(/: 2 items, completed, \$0\.50$/);
      expect(entries[1]).toMatch(/: 1 item, completed, \$0\.25$/);
      expect((await orderRows(page)).map((row) => row[2])).toEqual(['7']);
      expect(await page.evaluate('document.activeElement.tagName')).toBe('H3');

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByText('Sign up to see your orders here.').waitFor();
      expect(await page.locator('#order-list li').count()).toBe(0);
      expect(await page.locator('#order-view').textContent()).toBe('');
      expect(await page.evaluate('localStorage.length')).toBe(0);
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'rejected stored token signs out',
    async () => {
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;
      const stale = JSON.stringify({ userId: '00000000-0000-4000-8000-000000000000', username: 'gone', token: 'no-such-token' });
      await page.evaluate(`localStorage.setItem('inferline.session', ${JSON.stringify(stale)})`);
      // The page checks the token with GET /users/me on load and with GET /orders for the list.
      browserPage.expectFailedResponse(401, '/users/me');
      browserPage.expectFailedResponse(401, '/orders');

      await page.reload();
      await page.getByText(/^Signed out\./).waitFor();

      expect(await page.locator('#account-error').textContent()).toBe('Signed out. This server no longer accepts the saved sign-in of gone, so sign up again.');
      expect(await page.getByLabel('Username').isVisible()).toBe(true);
      expect(await page.evaluate('localStorage.length')).toBe(0);
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
