import { describe, expect, it } from 'vitest';
import { freePort } from '@chat/testing/ports';

describe('freePort', () => {
  // The kernel hands a just-released port to a later listen(0) now and then (22 repeats in 500
  // calls on this kind of machine): a runner that starts several processes would give two of
  // them the same port, and the second dies with EADDRINUSE.
  it('never returns a port it returned before in this process', async () => {
    const ports: number[] = [];
    for (let i = 0; i < 400; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(ports.length);
  });
});
