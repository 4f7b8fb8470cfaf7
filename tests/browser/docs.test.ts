import { describeInBrowser, openPage, usePageServer } from './helpers';

// A browser start (about 1 s) and Swagger UI's scripts (about 1.5 MB), with room for a busy machine.
const TEST_TIMEOUT_MS = 60_000;

describeInBrowser('API documentation in Swagger UI', () => {
  const baseUrl = usePageServer(TEST_TIMEOUT_MS);

  test(
    'docs page renders the document',
    async () => {
      const browserPage = await openPage(baseUrl(), { path: '/docs' });
      const { page } = browserPage;

      await page.locator('.swagger-ui .info .title').waitFor();
      await page.locator('.opblock').first().waitFor();
      await browserPage.screenshot('docs');

      expect(await page.locator('.swagger-ui .info .title').textContent()).toContain('inferline');
      expect(await page.locator('.opblock').count()).toBeGreaterThan(20);
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'try it out calls the API',
    async () => {
      const browserPage = await openPage(baseUrl(), { path: '/docs' });
      const { page } = browserPage;
      const operation = page.locator('#operations-service-get_healthz');

      await operation.locator('.opblock-summary').click();
      await operation.getByRole('button', { name: 'Try it out' }).click();
      await operation.getByRole('button', { name: 'Execute' }).click();
      const status = operation.locator('.live-responses-table .response .response-col_status').first();
      await status.waitFor();

      expect((await status.textContent())?.trim()).toBe('200');
      expect(await operation.locator('.live-responses-table .microlight').first().textContent()).toContain('"status": "ok"');
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
