import { AsyncLocalStorage } from 'node:async_hooks';

/** Ids that every log line written while handling one request carries. */
export interface RequestContext {
  requestId: string;
  userId?: string;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();
