/** Process-wide state that health checks and the shutdown summary read. */
export class Lifecycle {
  readonly startedAt = Date.now();
  modelLoaded = false;
  databaseOpen = false;
  shuttingDown = false;
  requestsServed = 0;

  /** True when the service can take traffic: model loaded, database open, no shutdown begun. */
  get ready(): boolean {
    return this.modelLoaded && this.databaseOpen && !this.shuttingDown;
  }
}
