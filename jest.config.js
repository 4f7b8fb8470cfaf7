/**
 * Three projects. The "api" tests call the app in-process through supertest and run in parallel.
 * The "process" tests start the built server (dist/server.js) as a child process and run one at a time.
 * The "browser" tests drive headless Chromium against the built server and its web page, one at a time.
 * @type {import('jest').Config}
 */
const tsJest = ['ts-jest', { tsconfig: 'tests/tsconfig.json' }];
// The build output contains a copy of package.json, which jest would take for a second package.
const modulePathIgnorePatterns = ['<rootDir>/dist/'];

module.exports = {
  projects: [
    {
      displayName: 'api',
      testEnvironment: 'node',
      transform: { '^.+\\.ts$': tsJest },
      modulePathIgnorePatterns,
      testMatch: ['<rootDir>/tests/*.test.ts'],
      // Fails a test whose responses break the OpenAPI document; see tests/helpers/response-check.ts.
      setupFilesAfterEnv: ['<rootDir>/tests/helpers/fail-on-bad-responses.ts'],
    },
    {
      displayName: 'process',
      testEnvironment: 'node',
      transform: { '^.+\\.ts$': tsJest },
      modulePathIgnorePatterns,
      testMatch: ['<rootDir>/tests/process/*.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/tests/helpers/fail-on-bad-responses.ts'],
    },
    {
      displayName: 'browser',
      testEnvironment: 'node',
      transform: { '^.+\\.ts$': tsJest },
      modulePathIgnorePatterns,
      testMatch: ['<rootDir>/tests/browser/*.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/tests/helpers/fail-on-bad-responses.ts'],
    },
  ],
};
