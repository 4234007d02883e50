import { afterAll, describe, expect, it } from 'vitest';
import { LoadgenClient } from '../bench/lib/loadgen-client.ts';
import { cleanUpOnSignal } from '../bench/lib/procs.ts';

/**
 * What an interrupted `pnpm bench` relies on to leave nothing behind: its cleanup stops the load
 * generator while a step may still be talking to it, and the step's failure then reaches the
 * run's `finally`, which asks for the same cleanup again.
 */
describe('bench cleanup', () => {
  const listeners = { SIGINT: process.listenerCount('SIGINT'), SIGTERM: process.listenerCount('SIGTERM') };
  afterAll(() => {
    // The handlers cleanUpOnSignal registered: not left to fire in the test runner.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const added = process.listeners(signal).slice(listeners[signal]);
      for (const listener of added) process.removeListener(signal, listener);
    }
  });

  it('runs the cleanup once however many ask for it, each waiting for that one run', async () => {
    let runs = 0;
    let finish = () => {};
    const cleanup = cleanUpOnSignal(
      () =>
        new Promise<void>((resolve) => {
          runs++;
          finish = resolve;
        }),
      () => {},
    );
    let settled = 0;
    const first = cleanup().then(() => settled++);
    const second = cleanup().then(() => settled++);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(runs).toBe(1);
    expect(settled).toBe(0);
    finish();
    await Promise.all([first, second]);
    expect(settled).toBe(2);
  });

  it('fails a request to a load generator that has been stopped instead of crashing the run', async () => {
    const loadgen = LoadgenClient.start('a-secret-only-this-test-knows-0123456789');
    await loadgen.stop();
    // A closed IPC channel: without a send callback Node emits an 'error' on the child process,
    // which nothing handles, and the bench died there with its pods and database left behind.
    await expect(loadgen.request({ cmd: 'exit' }, 5000)).rejects.toThrow(/channel closed/i);
  }, 30_000);
});
