import { createServer } from 'node:net';

/**
 * A free TCP port on 127.0.0.1 (bound, read, released). Its own module, free of vitest, so the
 * bench and fault runners (plain tsx scripts) can import it as `@chat/testing/ports`.
 */
export async function freePort(): Promise<number> {
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
