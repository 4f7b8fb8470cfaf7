import { digitToPng, heldOutDigits } from '../helpers/images';
import { BrowserPage, ONE, PointerKind, describeInBrowser, drawDigit, openPage, usePageServer } from './helpers';

// A browser start (about 1 s), a page load and a model call, with room for a busy machine.
const TEST_TIMEOUT_MS = 60_000;

async function predictedDigit(browserPage: BrowserPage): Promise<string> {
  return (await browserPage.page.locator('#prediction .predicted-digit').textContent()) ?? '';
}

describeInBrowser('web page: classify a digit', () => {
  const baseUrl = usePageServer(TEST_TIMEOUT_MS);

  test.each<[PointerKind]>([['mouse'], ['touch'], ['pen']])(
    'vertical %s stroke predicts 1',
    async (kind) => {
      const browserPage = await openPage(baseUrl(), { hasTouch: kind === 'touch' });
      const { page } = browserPage;

      await drawDigit(page, ONE, kind);
      await page.getByRole('button', { name: 'Classify drawing' }).click();
      await page.locator('#prediction .predicted-digit').waitFor();
      await browserPage.screenshot(`classify-drawing-${kind}`);

      expect(await predictedDigit(browserPage)).toBe('1');
      expect(await page.locator('#prediction .chart li').count()).toBe(10);
      expect(await page.locator('#prediction .chart li.top span').first().textContent()).toBe('1');
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'held-out MNIST file predicts its label',
    async () => {
      // The first held-out 4: held-out digits were never used in training.
      const sample = heldOutDigits().find((candidate) => candidate.label === 4);
      if (!sample) throw new Error('the held-out split has no 4');
      const png = await digitToPng(sample);
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;

      await page.getByLabel('Image file to classify').setInputFiles({ name: 'mnist-4.png', mimeType: 'image/png', buffer: png });
      await page.locator('#prediction .predicted-digit').waitFor();
      await browserPage.screenshot('classify-file');

      expect(await predictedDigit(browserPage)).toBe('4');
      expect(await page.locator('#prediction').textContent()).toContain('from the file mnist-4.png');
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'dropped file is classified',
    async () => {
      const sample = heldOutDigits().find((candidate) => candidate.label === 7);
      if (!sample) throw new Error('the held-out split has no 7');
      const png = await digitToPng(sample);
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;

      // Playwright cannot drag a file from the desktop, so the drop event carries a DataTransfer built in the page.
      const dataTransfer = await page.evaluateHandle(
        `(() => {
          const bytes = Uint8Array.from(atob(${JSON.stringify(png.toString('base64'))}), (c) => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], 'dropped-7.png', { type: 'image/png' }));
          return transfer;
        })()`,
      );
      await page.locator('#drop-zone').dispatchEvent('drop', { dataTransfer });
      await page.locator('#prediction .predicted-digit').waitFor();

      expect(await predictedDigit(browserPage)).toBe('7');
      expect(await page.locator('#prediction').textContent()).toContain('from the file dropped-7.png');
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'blank drawing shows the API error',
    async () => {
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;
      browserPage.expectFailedResponse(400, '/predict');

      await page.getByRole('button', { name: 'Classify drawing' }).click();
      const alert = page.locator('#classify-error');
      await alert.locator('p').first().waitFor();
      await browserPage.screenshot('classify-blank-error');

      const text = await alert.textContent();
      expect(text).toContain('Could not classify the drawing.');
      expect(text).toContain('no digit was found');
      expect(text).toMatch(/Error 400 Bad Request\. Request id [0-9a-f-]{36}/);
      expect(await page.locator('#prediction').textContent()).toBe('');
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'keyboard alone classifies a file',
    async () => {
      const sample = heldOutDigits().find((candidate) => candidate.label === 2);
      if (!sample) throw new Error('the held-out split has no 2');
      const png = await digitToPng(sample);
      const browserPage = await openPage(baseUrl());
      const { page } = browserPage;

      // Listening for the file chooser makes Playwright ask Chromium to intercept it, a request
      // that is not awaited. Starting to listen before the Tab presses, each a round trip to the
      // page, makes sure that the interception is on when Space opens the chooser.
      const chooser = page.waitForEvent('filechooser');

      // Tab from the top of the page until the file input has focus, as a keyboard user would.
      let focused = '';
      for (let presses = 0; presses < 15 && focused !== 'image-file'; presses++) {
        await page.keyboard.press('Tab');
        focused = (await page.evaluate('document.activeElement ? document.activeElement.id : ""')) as string;
      }
      expect(focused).toBe('image-file');
      const outline = await page.evaluate('getComputedStyle(document.activeElement).outlineStyle');
      expect(outline).not.toBe('none');

      await page.keyboard.press('Space');
      await (await chooser).setFiles({ name: 'keyboard-2.png', mimeType: 'image/png', buffer: png });
      await page.locator('#prediction .predicted-digit').waitFor();
      await browserPage.screenshot('classify-keyboard');

      expect(await predictedDigit(browserPage)).toBe('2');
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'page fits 360 px wide',
    async () => {
      const browserPage = await openPage(baseUrl(), { viewport: { width: 360, height: 740 } });
      const { page } = browserPage;

      await drawDigit(page, ONE);
      await page.getByRole('button', { name: 'Classify drawing' }).click();
      await page.locator('#prediction .predicted-digit').waitFor();
      await browserPage.screenshot('narrow-360px');

      const scrollWidth = await page.evaluate('document.documentElement.scrollWidth');
      expect(scrollWidth).toBeLessThanOrEqual(360);
      const canvasBox = await page.locator('#drawing-pad').boundingBox();
      expect(canvasBox?.width).toBeGreaterThan(200);
      expect(await predictedDigit(browserPage)).toBe('1');
      expect(browserPage.consoleErrors).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );
});
