import crypto from 'node:crypto';
import sharp from 'sharp';
import request from 'supertest';
import { TestApp, expectProblem, signUp, startTestApp, waitForTask } from './helpers/app';
import { digitToPng, fixture, heldOutDigits } from './helpers/images';

/** Fixture images with the digit each shows. */
const LABELLED_FIXTURES: [string, string][] = [
  ['digit-2-16bit-grey.png', '2'],
  ['digit-3-canvas-transparent.png', '3'],
  ['digit-5-exif-orientation-6.jpg', '5'],
  ['digit-8-light-on-dark.jpg', '8'],
];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const SVG = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><text x="8" y="22">7</text></svg>');

function base64Of(name: string): string {
  return fixture(name).toString('base64');
}

function fixtureItems(): { image: string }[] {
  return LABELLED_FIXTURES.map(([name]) => ({ image: base64Of(name) }));
}

/** Paths named by the `errors` array of a problem response. */
function errorPaths(response: request.Response): string[] {
  return (response.body.errors ?? []).map((error: { path: string }) => error.path);
}

function postOrder(testApp: TestApp, auth: string, body: object): request.Test {
  return request(testApp.app).post('/orders').set('Authorization', auth).send(body);
}

function getAs(testApp: TestApp, auth: string, path: string): request.Test {
  return request(testApp.app).get(path).set('Authorization', auth);
}

function patchOrder(testApp: TestApp, auth: string, id: string, body: object): request.Test {
  return request(testApp.app).patch(`/orders/${id}`).set('Authorization', auth).send(body);
}

/** Checks one classified item of an order, whatever label the model chose. */
function expectClassifiedItem(item: Record<string, any>, index: number, model: { name: string; version: string }): void {
  expect(item.index).toBe(index);
  expect(item.status).toBe('classified');
  expect(item.error).toBeNull();
  expect(item.model).toEqual(model);
  expect(item.probabilities).toHaveLength(10);
  for (const probability of item.probabilities) expect(probability).toBeGreaterThanOrEqual(0);
  expect(item.probabilities.reduce((sum: number, probability: number) => sum + probability, 0)).toBeCloseTo(1, 4);

  const best = Math.max(...item.probabilities);
  expect(item.confidence).toBeCloseTo(best, 6);
  expect(item.label).toBe(String(item.probabilities.indexOf(best)));
}

describe('orders', () => {
  let testApp: TestApp;
  let model: { name: string; version: string };
  let gif: Buffer;

  beforeAll(async () => {
    testApp = await startTestApp();
    model = { name: testApp.services.model.metadata.name, version: testApp.services.model.metadata.version };
    gif = await sharp({ create: { width: 28, height: 28, channels: 3, background: '#000000' } }).gif().toBuffer();
  });

  afterAll(async () => {
    await testApp.close();
  });

  describe('authentication', () => {
    test.each([
      ['POST', '/orders'],
      ['GET', '/orders'],
      ['GET', '/orders/:id'],
      ['PATCH', '/orders/:id'],
      ['GET', '/orders/:id/bill'],
    ])('%s %s without token is 401', async (method, route) => {
      const path = route.replace(':id', crypto.randomUUID());

      const response = await request(testApp.app)[method.toLowerCase() as 'get' | 'post' | 'patch'](path).send({ items: fixtureItems() });

      expectProblem(response, 401);
      expect(response.headers['www-authenticate']).toBe('Bearer');
    });

    test('unknown token is 401', async () => {
      const response = await request(testApp.app).get('/orders').set('Authorization', 'Bearer unknown-token-value');

      expectProblem(response, 401);
    });

    test('order without token stores nothing', async () => {
      const countOrders = () => (testApp.services.db.prepare('SELECT COUNT(*) AS count FROM orders').get() as { count: number }).count;
      const before = countOrders();

      await request(testApp.app).post('/orders').send({ items: fixtureItems() });

      expect(countOrders()).toBe(before);
    });
  });

  describe('POST /orders', () => {
    let user: { id: string; auth: string };

    beforeAll(async () => {
      user = await signUp(testApp.app, 'buyer');
    });

    test('JSON order returns 201 completed', async () => {
      const response = await postOrder(testApp, user.auth, { items: fixtureItems(), note: 'first batch' });

      expect(response.status).toBe(201);
      expect(response.body.id).toMatch(UUID);
      expect(response.headers.location).toBe(`/orders/${response.body.id}`);
      expect(response.body.status).toBe('completed');
      expect(response.body.note).toBe('first batch');
      expect(response.body.taskId).toBeNull();
      expect(new Date(response.body.createdAt).toISOString()).toBe(response.body.createdAt);
      expect(response.body.items).toHaveLength(4);
      response.body.items.forEach((item: Record<string, any>, index: number) => expectClassifiedItem(item, index, model));
    });

    test('bill uses default price', async () => {
      const response = await postOrder(testApp, user.auth, { items: fixtureItems() });

      expect(response.body.bill).toEqual({ items: 4, unitPrice: 25, total: 100, currency: 'USD' });
    });

    test('note is null when omitted', async () => {
      const response = await postOrder(testApp, user.auth, { items: fixtureItems().slice(0, 1) });

      expect(response.status).toBe(201);
      expect(response.body.note).toBeNull();
    });

    test('note with a lone surrogate is 400', async () => {
      const response = await postOrder(testApp, user.auth, { items: fixtureItems().slice(0, 1), note: 'broken \ud800 text' });

      expectProblem(response, 400);
      expect(response.body.errors).toEqual([{ path: 'note', message: 'must be valid Unicode text; it contains a lone surrogate (\\ud800 to \\udfff)' }]);
    });

    test('note with an emoji is kept', async () => {
      const response = await postOrder(testApp, user.auth, { items: fixtureItems().slice(0, 1), note: 'two faces \ud83d\ude00' });

      expect(response.status).toBe(201);
      expect(response.body.note).toBe('two faces 😀');
    });

    test('fixture digits get true labels', async () => {
      const response = await postOrder(testApp, user.auth, { items: fixtureItems() });

      const labels = response.body.items.map((item: { label: string }) => item.label);
      expect(labels).toEqual(LABELLED_FIXTURES.map(([, label]) => label));
    });

    test('held-out MNIST digits get true labels', async () => {
      const samples = Array.from({ length: 10 }, (_, label) => heldOutDigits().filter((sample) => sample.label === label)[3]);
      const images = await Promise.all(samples.map((sample) => digitToPng(sample)));

      const response = await postOrder(testApp, user.auth, { items: images.map((png) => ({ image: png.toString('base64') })) });

      expect(response.status).toBe(201);
      response.body.items.forEach((item: Record<string, any>, index: number) => expectClassifiedItem(item, index, model));
      expect(response.body.items.map((item: { label: string }) => item.label)).toEqual(samples.map((sample) => String(sample.label)));
    });

    test('multipart order returns 201', async () => {
      const call = request(testApp.app).post('/orders').set('Authorization', user.auth).field('note', 'scanned');
      for (const [name] of LABELLED_FIXTURES) call.attach('files', fixture(name), name);

      const response = await call;

      expect(response.status).toBe(201);
      expect(response.headers.location).toBe(`/orders/${response.body.id}`);
      expect(response.body.status).toBe('completed');
      expect(response.body.note).toBe('scanned');
      expect(response.body.items).toHaveLength(4);
      response.body.items.forEach((item: Record<string, any>, index: number) => expectClassifiedItem(item, index, model));
      expect(response.body.bill).toEqual({ items: 4, unitPrice: 25, total: 100, currency: 'USD' });
    });

    test('data URL prefix is accepted', async () => {
      const image = `data:image/png;base64,${base64Of('digit-2-16bit-grey.png')}`;

      const response = await postOrder(testApp, user.auth, { items: [{ image }] });

      expect(response.status).toBe(201);
      expectClassifiedItem(response.body.items[0], 0, model);
    });

    test('base64url image is accepted', async () => {
      const image = fixture('digit-8-light-on-dark.jpg').toString('base64url');

      const response = await postOrder(testApp, user.auth, { items: [{ image }] });

      expect(response.status).toBe(201);
      expectClassifiedItem(response.body.items[0], 0, model);
    });

    test('UNIT_PRICE and CURRENCY set the bill', async () => {
      const pricedApp = await startTestApp({ UNIT_PRICE: '40', CURRENCY: 'EUR' });
      try {
        const buyer = await signUp(pricedApp.app, 'euro_buyer');

        const response = await postOrder(pricedApp, buyer.auth, { items: fixtureItems().slice(0, 3) });
        const bill = await getAs(pricedApp, buyer.auth, `/orders/${response.body.id}/bill`);

        expect(response.status).toBe(201);
        expect(response.body.bill).toEqual({ items: 3, unitPrice: 40, total: 120, currency: 'EUR' });
        expect(bill.body).toEqual(response.body.bill);
      } finally {
        await pricedApp.close();
      }
    });
  });

  describe('POST /orders errors', () => {
    let user: { id: string; auth: string };

    beforeAll(async () => {
      user = await signUp(testApp.app, 'careless');
    });

    test('empty items is 400', async () => {
      const response = await postOrder(testApp, user.auth, { items: [] });

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('items');
    });

    test('missing items is 400', async () => {
      const response = await postOrder(testApp, user.auth, { note: 'nothing to classify' });

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('items');
    });

    test('unknown property is 400', async () => {
      const response = await postOrder(testApp, user.auth, { items: fixtureItems(), coupon: 'FREE' });

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('coupon');
    });

    test('note over 500 characters is 400', async () => {
      const response = await postOrder(testApp, user.auth, { items: fixtureItems(), note: 'n'.repeat(501) });

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('note');
    });

    test('invalid base64 is 400', async () => {
      const items = [{ image: base64Of('digit-2-16bit-grey.png') }, { image: 'not base64 at all!' }];

      const response = await postOrder(testApp, user.auth, { items });

      expectProblem(response, 400);
      expect(errorPaths(response)).toEqual(['items[1].image']);
    });

    test('empty image is 400', async () => {
      const items = [{ image: base64Of('digit-2-16bit-grey.png') }, { image: base64Of('empty.png') }];

      const response = await postOrder(testApp, user.auth, { items });

      expectProblem(response, 400);
      expect(errorPaths(response)).toEqual(['items[1].image']);
    });

    test('empty multipart file is 400', async () => {
      const call = request(testApp.app).post('/orders').set('Authorization', user.auth);
      call.attach('files', fixture('digit-2-16bit-grey.png'), 'digit.png').attach('files', fixture('empty.png'), 'empty.png');

      const response = await call;

      expectProblem(response, 400);
      expect(errorPaths(response)).toEqual(['files[1]']);
    });

    test('multipart without files is 400', async () => {
      const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).field('note', 'no files');

      expectProblem(response, 400);
      expect(errorPaths(response)).toEqual(['files']);
    });

    test('random bytes are 400', async () => {
      const response = await postOrder(testApp, user.auth, { items: [{ image: base64Of('corrupt-random-bytes.png') }] });

      expectProblem(response, 400);
      expect(errorPaths(response)).toEqual(['items[0].image']);
    });

    test('truncated JPEG is 400', async () => {
      const items = [{ image: base64Of('digit-8-light-on-dark.jpg') }, { image: base64Of('corrupt-truncated.jpg') }];

      const response = await postOrder(testApp, user.auth, { items });

      expectProblem(response, 400);
      expect(errorPaths(response)).toEqual(['items[1].image']);
      expect(response.body.detail).toMatch(/cannot be decoded/);
    });

    test('GIF image is 415', async () => {
      const response = await postOrder(testApp, user.auth, { items: [{ image: gif.toString('base64') }] });

      expectProblem(response, 415);
      expect(errorPaths(response)).toEqual(['items[0].image']);
      expect(response.body.detail).toMatch(/GIF/);
    });

    test('SVG image is 415', async () => {
      const response = await postOrder(testApp, user.auth, { items: [{ image: SVG.toString('base64') }] });

      expectProblem(response, 415);
      expect(errorPaths(response)).toEqual(['items[0].image']);
      expect(response.body.detail).toMatch(/SVG/);
    });

    test('text/plain body is 415', async () => {
      const response = await request(testApp.app).post('/orders').set('Authorization', user.auth).set('Content-Type', 'text/plain').send('digits please');

      expectProblem(response, 415);
    });

    test('one bad item fails the order', async () => {
      const items = [...fixtureItems(), { image: base64Of('corrupt-random-bytes.png') }];

      const response = await postOrder(testApp, user.auth, { items });
      const list = await getAs(testApp, user.auth, '/orders');

      expectProblem(response, 400);
      expect(errorPaths(response)).toEqual(['items[4].image']);
      expect(list.body.total).toBe(0);
    });

    test('failed requests store no orders', async () => {
      const list = await getAs(testApp, user.auth, '/orders');

      expect(list.body.total).toBe(0);
    });
  });

  describe('size limits', () => {
    let limitedApp: TestApp;
    let user: { id: string; auth: string };
    let smallDigits: Buffer[];

    beforeAll(async () => {
      limitedApp = await startTestApp({ MAX_IMAGE_BYTES: '1000', MAX_ITEMS: '2' });
      user = await signUp(limitedApp.app, 'limited');
      smallDigits = await Promise.all(heldOutDigits().slice(0, 3).map((sample) => digitToPng(sample)));
    });

    afterAll(async () => {
      await limitedApp.close();
    });

    test('small images fit the limits', async () => {
      const items = smallDigits.slice(0, 2).map((png) => ({ image: png.toString('base64') }));

      const response = await postOrder(limitedApp, user.auth, { items });

      expect(smallDigits.every((png) => png.length <= 1000)).toBe(true);
      expect(response.status).toBe(201);
    });

    test('image over MAX_IMAGE_BYTES is 413', async () => {
      const large = fixture('digit-5-exif-orientation-6.jpg');

      const response = await postOrder(limitedApp, user.auth, { items: [{ image: smallDigits[0].toString('base64') }, { image: large.toString('base64') }] });

      expect(large.length).toBeGreaterThan(1000);
      expectProblem(response, 413);
      expect(errorPaths(response)).toEqual(['items[1].image']);
    });

    test('multipart file over MAX_IMAGE_BYTES is 413', async () => {
      const call = request(limitedApp.app).post('/orders').set('Authorization', user.auth);
      call.attach('files', fixture('digit-5-exif-orientation-6.jpg'), 'large.jpg');

      const response = await call;

      expectProblem(response, 413);
      expect(response.body.detail).toBe('a file (field "files") is larger than MAX_IMAGE_BYTES (1000 bytes); send a smaller image');
    });

    test('more than MAX_ITEMS is 413', async () => {
      const items = smallDigits.map((png) => ({ image: png.toString('base64') }));

      const response = await postOrder(limitedApp, user.auth, { items });

      expectProblem(response, 413);
      expect(errorPaths(response)).toEqual(['items']);
    });

    test('more than MAX_ITEMS files is 413', async () => {
      const call = request(limitedApp.app).post('/orders').set('Authorization', user.auth);
      smallDigits.forEach((png, index) => call.attach('files', png, `digit-${index}.png`));

      const response = await call;

      expectProblem(response, 413);
      expect(response.body.detail).toBe('the body has more than MAX_ITEMS (2) files; split the request');
    });
  });

  describe('reading orders', () => {
    let owner: { id: string; auth: string };
    let stranger: { id: string; auth: string };
    let placed: Record<string, any>[];

    beforeAll(async () => {
      owner = await signUp(testApp.app, 'reader');
      stranger = await signUp(testApp.app, 'stranger');
      placed = [];
      for (const [name] of LABELLED_FIXTURES.slice(0, 3)) {
        const response = await postOrder(testApp, owner.auth, { items: [{ image: base64Of(name) }], note: name });
        placed.push(response.body);
      }
    });

    test('list is newest first', async () => {
      const response = await getAs(testApp, owner.auth, '/orders');

      expect(response.status).toBe(200);
      expect(response.body.total).toBe(3);
      expect(response.body.limit).toBe(20);
      expect(response.body.offset).toBe(0);
      expect(response.body.items.map((order: { id: string }) => order.id)).toEqual(placed.map((order) => order.id).reverse());
    });

    test('list pages with limit and offset', async () => {
      const first = await getAs(testApp, owner.auth, '/orders?limit=2');
      const second = await getAs(testApp, owner.auth, '/orders?limit=2&offset=2');

      expect(first.body.items.map((order: { id: string }) => order.id)).toEqual([placed[2].id, placed[1].id]);
      expect(first.body.total).toBe(3);
      expect(second.body.items.map((order: { id: string }) => order.id)).toEqual([placed[0].id]);
      expect(second.body.total).toBe(3);
      expect(second.body.offset).toBe(2);
    });

    test('list summaries count items', async () => {
      const response = await getAs(testApp, owner.auth, '/orders');

      const summary = response.body.items[0];
      expect(summary.itemCount).toBe(1);
      expect(summary).not.toHaveProperty('items');
      expect(summary.bill).toEqual({ items: 1, unitPrice: 25, total: 25, currency: 'USD' });
      expect(summary.status).toBe('completed');
    });

    test('invalid limit is 400', async () => {
      const response = await getAs(testApp, owner.auth, '/orders?limit=0');

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('limit');
    });

    test('other user lists none', async () => {
      const response = await getAs(testApp, stranger.auth, '/orders');

      expect(response.status).toBe(200);
      expect(response.body.total).toBe(0);
      expect(response.body.items).toEqual([]);
    });

    test('GET one returns the order', async () => {
      const response = await getAs(testApp, owner.auth, `/orders/${placed[1].id}`);

      expect(response.status).toBe(200);
      expect(response.body).toEqual(placed[1]);
    });

    test("other user's order is 404", async () => {
      const response = await getAs(testApp, stranger.auth, `/orders/${placed[0].id}`);

      expectProblem(response, 404);
    });

    test('unknown order is 404', async () => {
      const response = await getAs(testApp, owner.auth, `/orders/${crypto.randomUUID()}`);

      expectProblem(response, 404);
    });

    test('non-uuid order id is 400', async () => {
      const response = await getAs(testApp, owner.auth, '/orders/12345');

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('id');
    });

    test('bill matches the order', async () => {
      const response = await getAs(testApp, owner.auth, `/orders/${placed[0].id}/bill`);

      expect(response.status).toBe(200);
      expect(response.body).toEqual({ items: 1, unitPrice: 25, total: 25, currency: 'USD' });
    });

    test("other user's bill is 404", async () => {
      const response = await getAs(testApp, stranger.auth, `/orders/${placed[0].id}/bill`);

      expectProblem(response, 404);
    });

    test('unknown bill is 404', async () => {
      const response = await getAs(testApp, owner.auth, `/orders/${crypto.randomUUID()}/bill`);

      expectProblem(response, 404);
    });

    test('DELETE on an order is 405', async () => {
      const response = await request(testApp.app).delete(`/orders/${placed[0].id}`).set('Authorization', owner.auth);

      expectProblem(response, 405);
      expect(response.headers.allow).toBe('GET, PATCH, HEAD, OPTIONS');
    });
  });

  describe('PATCH /orders/:id', () => {
    let owner: { id: string; auth: string };
    let orderId: string;

    beforeAll(async () => {
      owner = await signUp(testApp.app, 'editor');
      const response = await postOrder(testApp, owner.auth, { items: fixtureItems().slice(0, 1), note: 'original' });
      orderId = response.body.id;
    });

    test('note is changed', async () => {
      const response = await patchOrder(testApp, owner.auth, orderId, { note: 'changed' });
      const stored = await getAs(testApp, owner.auth, `/orders/${orderId}`);

      expect(response.status).toBe(200);
      expect(response.body.note).toBe('changed');
      expect(response.body.status).toBe('completed');
      expect(stored.body.note).toBe('changed');
    });

    test('null note clears it', async () => {
      const response = await patchOrder(testApp, owner.auth, orderId, { note: null });
      const stored = await getAs(testApp, owner.auth, `/orders/${orderId}`);

      expect(response.status).toBe(200);
      expect(response.body.note).toBeNull();
      expect(stored.body.note).toBeNull();
    });

    test('empty change is 400', async () => {
      const response = await patchOrder(testApp, owner.auth, orderId, {});

      expectProblem(response, 400);
      expect(response.body.detail).toMatch(/note.*status/);
    });

    test('status completed is 400', async () => {
      const response = await patchOrder(testApp, owner.auth, orderId, { status: 'completed' });

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('status');
    });

    test('cancelling completed order is 409', async () => {
      const response = await patchOrder(testApp, owner.auth, orderId, { status: 'cancelled' });
      const stored = await getAs(testApp, owner.auth, `/orders/${orderId}`);

      expectProblem(response, 409);
      expect(stored.body.status).toBe('completed');
    });

    test("other user's order is 404", async () => {
      const stranger = await signUp(testApp.app, 'meddler');

      const response = await patchOrder(testApp, stranger.auth, orderId, { note: 'mine now' });
      const stored = await getAs(testApp, owner.auth, `/orders/${orderId}`);

      expectProblem(response, 404);
      expect(stored.body.note).not.toBe('mine now');
    });
  });

  describe('asynchronous orders', () => {
    test('respond-async order completes', async () => {
      const user = await signUp(testApp.app, 'patient');

      const response = await postOrder(testApp, user.auth, { items: fixtureItems() }).set('Prefer', 'respond-async');
      const task = await waitForTask(testApp.app, response.body.id, user.auth);
      const order = await getAs(testApp, user.auth, `/orders/${response.body.orderId}`);

      expect(response.status).toBe(202);
      expect(task.status).toBe('succeeded');
      expect(task.result.orderId).toBe(response.body.orderId);
      expect(order.body.status).toBe('completed');
      expect(order.body.taskId).toBe(response.body.id);
      expect(order.body.bill).toEqual({ items: 4, unitPrice: 25, total: 100, currency: 'USD' });
    });

    describe('with the runner stopped', () => {
      let stoppedApp: TestApp;

      beforeAll(async () => {
        stoppedApp = await startTestApp();
        // A running runner classifies a queued order within milliseconds, so a cancel would race it.
        // Stopped, it leaves the order pending until the test cancels it.
        await stoppedApp.services.runner.stop();
      });

      afterAll(async () => {
        await stoppedApp.close();
      });

      test('respond-async order returns 202', async () => {
        const user = await signUp(stoppedApp.app, 'queued_buyer');

        const response = await postOrder(stoppedApp, user.auth, { items: fixtureItems() }).set('Prefer', 'respond-async');
        const order = await getAs(stoppedApp, user.auth, `/orders/${response.body.orderId}`);

        expect(response.status).toBe(202);
        expect(response.body.id).toMatch(UUID);
        expect(response.body.status).toBe('queued');
        expect(response.body.orderId).toMatch(UUID);
        expect(response.headers.location).toBe(`/tasks/${response.body.id}`);
        expect(response.headers['preference-applied']).toBe('respond-async');
        expect(order.body.status).toBe('pending');
        expect(order.body.bill.total).toBe(0);
      });

      test('cancelling pending order cancels its task', async () => {
        const user = await signUp(stoppedApp.app, 'canceller');
        const queued = await postOrder(stoppedApp, user.auth, { items: fixtureItems() }).set('Prefer', 'respond-async');

        const response = await patchOrder(stoppedApp, user.auth, queued.body.orderId, { status: 'cancelled' });
        const task = await getAs(stoppedApp, user.auth, `/tasks/${queued.body.id}`);
        const bill = await getAs(stoppedApp, user.auth, `/orders/${queued.body.orderId}/bill`);

        expect(response.status).toBe(200);
        expect(response.body.status).toBe('cancelled');
        expect(task.body.status).toBe('cancelled');
        expect(bill.body.total).toBe(0);
        expect(bill.body.items).toBe(0);
        expect(response.body.items.map((item: { status: string }) => item.status)).toEqual(fixtureItems().map(() => 'cancelled'));
      });

      test('cancelling cancelled order is 409', async () => {
        const user = await signUp(stoppedApp.app, 'twice');
        const queued = await postOrder(stoppedApp, user.auth, { items: fixtureItems() }).set('Prefer', 'respond-async');
        await patchOrder(stoppedApp, user.auth, queued.body.orderId, { status: 'cancelled' });

        const response = await patchOrder(stoppedApp, user.auth, queued.body.orderId, { status: 'cancelled' });

        expectProblem(response, 409);
      });

      test('bad async item is 400 and queues nothing', async () => {
        const user = await signUp(stoppedApp.app, 'bad_async');

        const response = await postOrder(stoppedApp, user.auth, { items: [{ image: base64Of('corrupt-random-bytes.png') }] }).set('Prefer', 'respond-async');
        const list = await getAs(stoppedApp, user.auth, '/orders');

        expectProblem(response, 400);
        expect(list.body.total).toBe(0);
      });
    });
  });

  describe('Idempotency-Key', () => {
    test('retry replays the first response', async () => {
      const user = await signUp(testApp.app, 'retrier');
      const body = { items: fixtureItems().slice(0, 2), note: 'retry me' };

      const first = await postOrder(testApp, user.auth, body).set('Idempotency-Key', 'order-001');
      const second = await postOrder(testApp, user.auth, body).set('Idempotency-Key', 'order-001');
      const list = await getAs(testApp, user.auth, '/orders');

      expect(first.status).toBe(201);
      expect(second.status).toBe(201);
      expect(second.body.id).toBe(first.body.id);
      expect(second.body).toEqual(first.body);
      expect(second.headers.location).toBe(first.headers.location);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      expect(list.body.total).toBe(1);
    });

    test('same key, other body is 409', async () => {
      const user = await signUp(testApp.app, 'key_reuser');
      await postOrder(testApp, user.auth, { items: fixtureItems().slice(0, 1) }).set('Idempotency-Key', 'order-002');

      const response = await postOrder(testApp, user.auth, { items: fixtureItems().slice(1, 2) }).set('Idempotency-Key', 'order-002');
      const list = await getAs(testApp, user.auth, '/orders');

      expectProblem(response, 409);
      expect(list.body.total).toBe(1);
    });

    test('keys are per user', async () => {
      const first = await signUp(testApp.app, 'key_owner_a');
      const second = await signUp(testApp.app, 'key_owner_b');
      const body = { items: fixtureItems().slice(0, 1) };

      const firstOrder = await postOrder(testApp, first.auth, body).set('Idempotency-Key', 'shared-key');
      const secondOrder = await postOrder(testApp, second.auth, body).set('Idempotency-Key', 'shared-key');
      const secondList = await getAs(testApp, second.auth, '/orders');

      expect(firstOrder.status).toBe(201);
      expect(secondOrder.status).toBe(201);
      expect(secondOrder.body.id).not.toBe(firstOrder.body.id);
      expect(secondOrder.headers['idempotent-replayed']).toBeUndefined();
      expect(secondList.body.items.map((order: { id: string }) => order.id)).toEqual([secondOrder.body.id]);
    });

    test.each([
      ['300 characters', 'k'.repeat(300)],
      ['a space', 'two words'],
    ])('key with %s is 400', async (_case, key) => {
      const user = await signUp(testApp.app, `bad_key_${key.length}`);

      const response = await postOrder(testApp, user.auth, { items: fixtureItems().slice(0, 1) }).set('Idempotency-Key', key);
      const list = await getAs(testApp, user.auth, '/orders');

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('idempotency-key');
      expect(list.body.total).toBe(0);
    });

    test('failed request frees the key', async () => {
      const user = await signUp(testApp.app, 'second_try');
      const failed = await postOrder(testApp, user.auth, { items: [{ image: base64Of('corrupt-random-bytes.png') }] }).set('Idempotency-Key', 'order-003');

      const retried = await postOrder(testApp, user.auth, { items: fixtureItems().slice(0, 1) }).set('Idempotency-Key', 'order-003');

      expectProblem(failed, 400);
      expect(retried.status).toBe(201);
      expect(retried.headers['idempotent-replayed']).toBeUndefined();
    });

    test('async retry replays the 202', async () => {
      const user = await signUp(testApp.app, 'async_retrier');
      const body = { items: fixtureItems().slice(0, 1) };

      const first = await postOrder(testApp, user.auth, body).set('Idempotency-Key', 'order-004').set('Prefer', 'respond-async');
      const second = await postOrder(testApp, user.auth, body).set('Idempotency-Key', 'order-004').set('Prefer', 'respond-async');
      await waitForTask(testApp.app, first.body.id, user.auth);
      const list = await getAs(testApp, user.auth, '/orders');

      expect(first.status).toBe(202);
      expect(second.status).toBe(202);
      expect(second.body).toEqual(first.body);
      expect(second.headers.location).toBe(`/tasks/${first.body.id}`);
      expect(list.body.total).toBe(1);
    });
  });
});
