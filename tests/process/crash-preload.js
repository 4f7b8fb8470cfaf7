// Test-only preload (node --require) that makes the server crash, to test its last-resort handlers.
// CRASH_KIND=exception throws inside a setImmediate callback; CRASH_KIND=rejection leaves a promise
// rejection unhandled. Either happens once the server has installed its handlers and is listening.
'use strict';

const kind = process.env.CRASH_KIND;

const waitForServer = setInterval(() => {
  const handlersInstalled = process.listenerCount('uncaughtException') > 0 && process.listenerCount('unhandledRejection') > 0;
  const listening = process._getActiveHandles().some((handle) => handle.constructor.name === 'Server' && handle.listening);
  if (!handlersInstalled || !listening) return;

  clearInterval(waitForServer);
  setTimeout(() => {
    if (kind === 'exception') {
      setImmediate(() => {
        throw new Error('injected crash in a setImmediate callback');
      });
    } else if (kind === 'rejection') {
      Promise.reject(new Error('injected unhandled rejection'));
    }
  }, 200);
}, 20);
