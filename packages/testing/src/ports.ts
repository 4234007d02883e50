import { createServer } from 'node:net';

/**
 * Ports this process has handed out already. The kernel may give a released port to the next
 * `listen(0)` at once, so two calls in a row can return the same port before either's user has
 * bound it (seen: a bench gateway's HTTP port equal to the previous gateway's inspector port,
 * EADDRINUSE). Within one process that never happens now; across processes it stays as rare as
 * the kernel makes it.
 */
const handedOut = new Set<number>();

function listenOnAnyPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A free TCP port on 127.0.0.1 (bound, read, released), never one this process was given
 * before. Its own module, free of vitest, so the bench and fault runners (plain tsx scripts) can
 * import it as `@chat/testing/ports`.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOnAnyPort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no fresh free port in 50 attempts');
}
