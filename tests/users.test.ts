import crypto from 'node:crypto';
import request from 'supertest';
import { TestApp, expectProblem, signUp, startTestApp } from './helpers/app';

/** Paths named by the `errors` array of a problem response. */
function errorPaths(response: request.Response): string[] {
  return (response.body.errors ?? []).map((error: { path: string }) => error.path);
}

describe('users', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    // These tests sign up more users than the default limit of 20 an hour per client allows;
    // tests/rate-limits.test.ts checks the limit itself.
    testApp = await startTestApp({ SIGN_UP_RATE_LIMIT: '1000' });
  });

  afterAll(async () => {
    await testApp.close();
  });

  describe('sign-up', () => {
    test('POST returns 201 with token', async () => {
      const response = await request(testApp.app).post('/users').send({ username: 'ada_lovelace-1' });

      expect(response.status).toBe(201);
      expect(response.body.username).toBe('ada_lovelace-1');
      expect(response.body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(new Date(response.body.createdAt).toISOString()).toBe(response.body.createdAt);
      expect(typeof response.body.token).toBe('string');
      expect(response.body.token.length).toBeGreaterThanOrEqual(32);
      expect(Object.keys(response.body).sort()).toEqual(['createdAt', 'id', 'token', 'username']);
      expect(response.headers.location).toBe(`/users/${response.body.id}`);
    });

    test('token is stored as SHA-256 hash', async () => {
      const user = await signUp(testApp.app, 'hashed_token');

      const row = testApp.services.db.prepare('SELECT token_hash FROM users WHERE id = ?').get(user.id) as { token_hash: string };

      expect(row.token_hash).not.toBe(user.token);
      expect(row.token_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(row.token_hash).toBe(crypto.createHash('sha256').update(user.token).digest('hex'));
    });

    test('taken username is 409', async () => {
      await signUp(testApp.app, 'taken_name');

      const response = await request(testApp.app).post('/users').send({ username: 'taken_name' });

      expectProblem(response, 409);
      expect(response.body.detail).toContain('taken_name');
    });

    test('shortest and longest usernames are accepted', async () => {
      const shortest = await request(testApp.app).post('/users').send({ username: 'abc' });
      const longest = await request(testApp.app).post('/users').send({ username: 'z'.repeat(32) });

      expect(shortest.status).toBe(201);
      expect(longest.status).toBe(201);
    });

    test.each([
      ['too short', { username: 'ab' }],
      ['too long', { username: 'a'.repeat(33) }],
      ['uppercase', { username: 'Alice' }],
      ['space', { username: 'al ice' }],
      ['unicode', { username: 'émile' }],
      ['empty', { username: '' }],
      ['trailing newline', { username: 'alice\n' }],
      ['dot', { username: 'al.ice' }],
      ['missing', {}],
      ['number', { username: 12345 }],
      ['null', { username: null }],
      ['array', { username: ['alice'] }],
    ])('invalid username (%s) is 400', async (_case, body) => {
      const response = await request(testApp.app).post('/users').send(body);

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('username');
    });

    test('extra property is 400', async () => {
      const response = await request(testApp.app).post('/users').send({ username: 'extra_prop', admin: true });

      expectProblem(response, 400);
      expect(response.body.detail).toContain('admin');
      expect(errorPaths(response)).toContain('admin');
    });

    test('non-JSON body is 400', async () => {
      const response = await request(testApp.app).post('/users').set('Content-Type', 'application/json').send('{"username":');

      expectProblem(response, 400);
    });

    test('DELETE /users is 405 with Allow', async () => {
      const response = await request(testApp.app).delete('/users');

      expectProblem(response, 405);
      expect(response.headers.allow).toBe('POST, GET, HEAD, OPTIONS');
    });

    test('PUT on one user is 405', async () => {
      const user = await signUp(testApp.app, 'put_target');

      const response = await request(testApp.app).put(`/users/${user.id}`).send({ username: 'renamed' });

      expectProblem(response, 405);
      expect(response.headers.allow).toBe('GET, HEAD, OPTIONS');
    });
  });

  describe('GET /users/me', () => {
    test('valid token returns the caller', async () => {
      const user = await signUp(testApp.app, 'me_caller');

      const response = await request(testApp.app).get('/users/me').set('Authorization', user.auth);

      expect(response.status).toBe(200);
      expect(response.body.id).toBe(user.id);
      expect(response.body.username).toBe('me_caller');
      expect(response.body).not.toHaveProperty('token');
      expect(JSON.stringify(response.body)).not.toContain(user.token);
    });

    test('lowercase bearer scheme is accepted', async () => {
      const user = await signUp(testApp.app, 'lower_scheme');

      const response = await request(testApp.app).get('/users/me').set('Authorization', `bearer ${user.token}`);

      expect(response.status).toBe(200);
      expect(response.body.id).toBe(user.id);
    });

    test('missing token is 401', async () => {
      const response = await request(testApp.app).get('/users/me');

      expectProblem(response, 401);
      expect(response.headers['www-authenticate']).toBe('Bearer');
    });

    test.each([
      ['scheme only', 'Bearer'],
      ['basic scheme', 'Basic dXNlcjpwYXNz'],
      ['two tokens', 'Bearer abc def'],
      ['invalid characters', 'Bearer !!!'],
      ['no scheme', 'abcdefghijklmnop'],
    ])('malformed header (%s) is 401', async (_case, header) => {
      const response = await request(testApp.app).get('/users/me').set('Authorization', header);

      expectProblem(response, 401);
      expect(response.headers['www-authenticate']).toBe('Bearer');
    });

    test('unknown token is 401', async () => {
      const unknownToken = crypto.randomBytes(32).toString('base64url');

      const response = await request(testApp.app).get('/users/me').set('Authorization', `Bearer ${unknownToken}`);

      expectProblem(response, 401);
      expect(response.headers['www-authenticate']).toBe('Bearer');
    });

    test('token hash is not a token', async () => {
      const user = await signUp(testApp.app, 'hash_as_token');
      const row = testApp.services.db.prepare('SELECT token_hash FROM users WHERE id = ?').get(user.id) as { token_hash: string };

      const response = await request(testApp.app).get('/users/me').set('Authorization', `Bearer ${row.token_hash}`);

      expectProblem(response, 401);
    });
  });

  describe('GET /users/:id', () => {
    test('known id returns the user', async () => {
      const user = await signUp(testApp.app, 'lookup_target');

      const response = await request(testApp.app).get(`/users/${user.id}`);

      expect(response.status).toBe(200);
      expect(response.body.id).toBe(user.id);
      expect(response.body.username).toBe('lookup_target');
      expect(Object.keys(response.body).sort()).toEqual(['createdAt', 'id', 'username']);
      expect(JSON.stringify(response.body)).not.toContain(user.token);
    });

    test('unknown uuid is 404', async () => {
      const response = await request(testApp.app).get(`/users/${crypto.randomUUID()}`);

      expectProblem(response, 404);
    });

    test('non-uuid id is 400', async () => {
      const response = await request(testApp.app).get('/users/not-a-uuid');

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('id');
    });
  });

  describe('GET /users', () => {
    let listApp: TestApp;
    let created: { id: string; token: string }[];

    beforeAll(async () => {
      listApp = await startTestApp();
      created = [];
      for (const name of ['list_a', 'list_b', 'list_c']) created.push(await signUp(listApp.app, name));
    });

    afterAll(async () => {
      await listApp.close();
    });

    test('default page lists every user', async () => {
      const response = await request(listApp.app).get('/users');

      expect(response.status).toBe(200);
      expect(response.body.total).toBe(3);
      expect(response.body.limit).toBe(20);
      expect(response.body.offset).toBe(0);
      expect(response.body.items.map((user: { id: string }) => user.id).sort()).toEqual(created.map((user) => user.id).sort());
    });

    test('list never includes tokens', async () => {
      const response = await request(listApp.app).get('/users');

      for (const user of response.body.items) expect(Object.keys(user).sort()).toEqual(['createdAt', 'id', 'username']);
      for (const user of created) expect(response.text).not.toContain(user.token);
    });

    test('list is oldest first', async () => {
      const response = await request(listApp.app).get('/users');

      const times = response.body.items.map((user: { createdAt: string }) => user.createdAt);
      expect(times).toEqual([...times].sort());
    });

    test('limit and offset select a page', async () => {
      const all = await request(listApp.app).get('/users?limit=100');

      const page = await request(listApp.app).get('/users?limit=2&offset=1');

      expect(page.status).toBe(200);
      expect(page.body.limit).toBe(2);
      expect(page.body.offset).toBe(1);
      expect(page.body.total).toBe(3);
      expect(page.body.items).toEqual(all.body.items.slice(1, 3));
    });

    test('offset past the end is empty', async () => {
      const response = await request(listApp.app).get('/users?offset=10');

      expect(response.status).toBe(200);
      expect(response.body.items).toEqual([]);
      expect(response.body.total).toBe(3);
    });

    test('huge offset is empty', async () => {
      const response = await request(listApp.app).get(`/users?offset=${Number.MAX_SAFE_INTEGER}`);

      expect(response.status).toBe(200);
      expect(response.body.items).toEqual([]);
    });

    test.each(['0', '101', 'abc', '1.5', '-1', '', '1e400'])('limit=%s is 400', async (limit) => {
      const response = await request(listApp.app).get(`/users?limit=${limit}`);

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('limit');
    });

    test.each(['-1', 'abc', '1e20'])('offset=%s is 400', async (offset) => {
      const response = await request(listApp.app).get(`/users?offset=${offset}`);

      expectProblem(response, 400);
      expect(errorPaths(response)).toContain('offset');
    });
  });
});
