import { type Violation, takeViolations } from './response-check';

// Jest setup file of every test project: a test fails when a response it received, or one sent to
// the hooks before it, breaks the OpenAPI document. startTestApp records the responses of test
// apps; the process and browser helpers record the responses their clients receive.

function describeViolations(violations: Violation[]): string {
  const lines = violations.map((violation) => `${violation.request} -> ${violation.status}:\n  - ${violation.problems.join('\n  - ')}`);
  return `${violations.length} response(s) do not match the OpenAPI document:\n${lines.join('\n')}`;
}

afterEach(() => {
  const violations = takeViolations();
  if (violations.length > 0) throw new Error(describeViolations(violations));
});

afterAll(() => {
  const violations = takeViolations();
  if (violations.length > 0) throw new Error(describeViolations(violations));
});
