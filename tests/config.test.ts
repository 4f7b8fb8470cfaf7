import os from 'node:os';
import express from 'express';
import { ConfigError, loadConfig } from '../services/config';

const MB = 1024 * 1024;

describe('loadConfig', () => {
  test.each<[string, unknown]>([
    ['HOST', '127.0.0.1'],
    ['PORT', 3000],
    ['WORKERS', 1],
    ['MODEL_DIR', 'models/digits'],
    ['TF_BACKEND', undefined],
    ['DATABASE_PATH', 'data/app.db'],
    ['DATABASE_BUSY_TIMEOUT_MS', 5000],
    ['LOG_DIR', 'logs'],
    ['LOG_LEVEL', 'info'],
    ['LOG_CONSOLE', true],
    ['LOG_MAX_BYTES', 50 * MB],
    ['LOG_MAX_FILES', 5],
    ['UNIT_PRICE', 25],
    ['CURRENCY', 'USD'],
    ['SYNC_MAX_ITEMS', 16],
    ['MAX_ITEMS', 1000],
    ['MAX_IMAGE_BYTES', 5 * MB],
    ['MAX_IMAGE_PIXELS', 25_000_000],
    ['MAX_BODY_BYTES', 16 * MB],
    ['MAX_BATCH_SIZE', 32],
    ['MAX_BATCH_DELAY_MS', 0],
    ['MAX_QUEUED_INPUTS', 4096],
    ['TASK_CHUNK_SIZE', 8],
    ['TASK_TTL_SECONDS', 86_400],
    ['SHUTDOWN_TIMEOUT_MS', 10_000],
    ['WEB_DIR', 'dist/web'],
    ['TRUST_PROXY', false],
    ['SIGN_UP_RATE_LIMIT', 20],
    ['SIGN_UP_RATE_WINDOW_SECONDS', 3600],
    ['PREDICT_RATE_LIMIT', 600],
    ['PREDICT_RATE_WINDOW_SECONDS', 60],
    ['ORDER_RATE_LIMIT', 120],
    ['ORDER_RATE_WINDOW_SECONDS', 60],
    ['INFER_RATE_LIMIT', 600],
    ['INFER_RATE_WINDOW_SECONDS', 60],
    ['TASK_QUEUE_MAX', 1000],
    ['HEADERS_TIMEOUT_MS', 20_000],
    ['REQUEST_TIMEOUT_MS', 120_000],
    ['JSON_MAX_DEPTH', 32],
    ['JSON_MAX_KEYS', 10_000],
  ])('default %s is %p', (name, expected) => {
    const config = loadConfig({});

    expect(config[name as keyof typeof config]).toBe(expected);
  });

  test('default CORS_ORIGINS is empty', () => {
    const config = loadConfig({});

    expect(config.CORS_ORIGINS).toEqual([]);
  });

  test.each<[string, string[]]>([
    ['https://app.example.com', ['https://app.example.com']],
    ['https://app.example.com, http://localhost:5173', ['https://app.example.com', 'http://localhost:5173']],
    [' http://127.0.0.1:8080 ,, https://[::1]:8443 ', ['http://127.0.0.1:8080', 'https://[::1]:8443']],
    [',', []],
  ])('CORS_ORIGINS=%p is parsed', (value, expected) => {
    const config = loadConfig({ CORS_ORIGINS: value });

    expect(config.CORS_ORIGINS).toEqual(expected);
  });

  test.each<[string, string]>([
    ['app.example.com', 'app.example.com'],
    ['https://app.example.com/', 'https://app.example.com/'],
    ['https://app.example.com/path', 'https://app.example.com/path'],
    ['HTTPS://App.Example.com', 'HTTPS://App.Example.com'],
    ['https://app.example.com:443', 'https://app.example.com:443'],
    ['*', '*'],
    ['ftp://files.example.com', 'ftp://files.example.com'],
    ['https://ok.example.com, null', 'null'],
  ])('invalid CORS_ORIGINS=%p names %p', (value, entry) => {
    let caught: unknown;

    try {
      loadConfig({ CORS_ORIGINS: value });
    } catch (error) {
      caught = error;
    }

    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).message).toContain(`CORS_ORIGINS=${JSON.stringify(value)} is invalid`);
    expect((caught as ConfigError).message).toContain(`${JSON.stringify(entry)} is not an origin`);
    expect((caught as ConfigError).message).toContain('such as https://app.example.com');
  });

  test('empty value means the default', () => {
    const config = loadConfig({ PORT: '', LOG_LEVEL: '' });

    expect(config.PORT).toBe(3000);
    expect(config.LOG_LEVEL).toBe('info');
  });

  test('valid values are parsed', () => {
    const config = loadConfig({ PORT: ' 8080 ', TF_BACKEND: 'cpu', LOG_CONSOLE: 'false', CURRENCY: 'EUR', SYNC_MAX_ITEMS: '1' });

    expect(config.PORT).toBe(8080);
    expect(config.TF_BACKEND).toBe('cpu');
    expect(config.LOG_CONSOLE).toBe(false);
    expect(config.CURRENCY).toBe('EUR');
    expect(config.SYNC_MAX_ITEMS).toBe(1);
  });

  test('LOG_MAX_BYTES=0 is accepted', () => {
    const config = loadConfig({ LOG_MAX_BYTES: '0' });

    expect(config.LOG_MAX_BYTES).toBe(0);
  });

  test('WORKERS=auto is one per available core', () => {
    const config = loadConfig({ WORKERS: 'auto' });

    expect(config.WORKERS).toBe(os.availableParallelism());
  });

  test('WORKERS takes a count', () => {
    const config = loadConfig({ WORKERS: '3' });

    expect(config.WORKERS).toBe(3);
  });

  test('unknown variables are ignored', () => {
    const config = loadConfig({ PATH: '/usr/bin', HOME: '/root' });

    expect(config).not.toHaveProperty('PATH');
    expect(config).not.toHaveProperty('HOME');
  });

  test.each<[string, string, RegExp]>([
    ['PORT', 'abc', /whole number from 0 to 65535/],
    ['PORT', '70000', /at most 65535/],
    ['PORT', '-1', /whole number from 0 to 65535/],
    ['WORKERS', '0', /at least 1/],
    ['WORKERS', 'all', /"auto" or a whole number from 1 to 256/],
    ['WORKERS', '1000', /at most 256/],
    ['TF_BACKEND', 'gpu', /"node"\|"wasm"\|"cpu"/],
    ['CURRENCY', 'usd', /three-letter ISO 4217 code such as USD/],
    ['SYNC_MAX_ITEMS', '0', /at least 1/],
    ['MAX_BATCH_DELAY_MS', '1001', /at most 1000/],
    ['MAX_QUEUED_INPUTS', '0', /at least 1/],
    ['LOG_LEVEL', 'loud', /"error"\|"warn"\|"info"\|"debug"/],
    ['LOG_CONSOLE', 'yes', /"true"\|"false"/],
    ['TRUST_PROXY', 'yes', /"yes" is not an address/],
    ['TRUST_PROXY', '10.0.0.0/8,proxy.example', /"proxy.example" is not an address/],
    ['TRUST_PROXY', '10.0.0.0/33', /"10.0.0.0\/33" has an invalid prefix length: an IPv4 subnet takes \/1 to \/32/],
    ['TRUST_PROXY', 'loopback,fd00::/129', /"fd00::\/129" has an invalid prefix length: an IPv6 subnet takes \/1 to \/128/],
    ['PREDICT_RATE_LIMIT', '0', /at least 1/],
    ['SIGN_UP_RATE_WINDOW_SECONDS', '86401', /at most 86400/],
    ['JSON_MAX_DEPTH', '1', /at least 2/],
    ['HEADERS_TIMEOUT_MS', '200000', /must not be more than REQUEST_TIMEOUT_MS \(120000, its default\)/],
    ['REQUEST_TIMEOUT_MS', '1000', /must not be less than HEADERS_TIMEOUT_MS \(20000, its default\)/],
    ['LOG_MAX_BYTES', '50MB', /whole number from 0/],
    ['LOG_MAX_FILES', '0', /at least 1/],
    ['LOG_MAX_FILES', '1001', /at most 1000/],
  ])('invalid %s=%s throws', (name, value, accepted) => {
    let caught: unknown;

    try {
      loadConfig({ [name]: value });
    } catch (error) {
      caught = error;
    }

    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).message).toContain(`${name}=${JSON.stringify(value)}`);
    expect((caught as ConfigError).message).toMatch(accepted);
  });

  test.each<[string, unknown]>([
    ['true', true],
    ['false', false],
    ['2', 2],
    ['loopback, 10.0.0.0/8, fd00::/8', 'loopback, 10.0.0.0/8, fd00::/8'],
  ])('TRUST_PROXY=%s is %p', (value, expected) => {
    const config = loadConfig({ TRUST_PROXY: value });

    expect(config.TRUST_PROXY).toBe(expected);
  });

  // Express compiles TRUST_PROXY with proxy-addr when createApp sets `trust proxy`, and a value that
  // it rejects would stop the start after validation passed.
  test.each(['10.0.0.0/33', 'fd00::/129', '0.0.0.0/0', '10.0.0.0/', '10.0.0.0/8/8', 'loopback,'])('TRUST_PROXY=%p is rejected, as by Express', (value) => {
    const load = () => loadConfig({ TRUST_PROXY: value });
    const setInExpress = () => express().set('trust proxy', value);

    expect(load).toThrow(ConfigError);
    expect(setInExpress).toThrow(TypeError);
  });

  test.each(['10.0.0.0/32', '10.0.0.0/1', 'fd00::/128', '::ffff:10.0.0.0/104', 'fe80::1', 'loopback, 10.0.0.0/8'])('TRUST_PROXY=%p is accepted, as by Express', (value) => {
    const config = loadConfig({ TRUST_PROXY: value });
    const setInExpress = () => express().set('trust proxy', config.TRUST_PROXY);

    expect(config.TRUST_PROXY).toBe(value);
    expect(setInExpress).not.toThrow();
  });

  test('both timeouts set and out of order', () => {
    const load = () => loadConfig({ HEADERS_TIMEOUT_MS: '5000', REQUEST_TIMEOUT_MS: '2000' });

    expect(load).toThrow('HEADERS_TIMEOUT_MS="5000" is invalid: must not be more than REQUEST_TIMEOUT_MS (2000). Set HEADERS_TIMEOUT_MS to at most 2000');
  });

  test('timeout message names no unset variable', () => {
    const load = () => loadConfig({ REQUEST_TIMEOUT_MS: '1000' });

    expect(load).toThrow('REQUEST_TIMEOUT_MS="1000" is invalid');
    expect(load).not.toThrow(/undefined/);
  });

  test('every invalid variable is named', () => {
    const load = () => loadConfig({ PORT: 'abc', LOG_LEVEL: 'loud' });

    expect(load).toThrow(/PORT="abc"/);
    expect(load).toThrow(/LOG_LEVEL="loud"/);
  });

  test('result is frozen', () => {
    const config = loadConfig({});

    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { PORT: number }).PORT = 1;
    }).toThrow(TypeError);
    expect(config.PORT).toBe(3000);
  });
});
