import { createConnection, createServer, type Server } from 'node:net';

/**
 * A TCP relay in front of Postgres that counts round trips: a client→server chunk that
 * follows a server→client chunk (or opens the conversation) starts one. Pipelined queries
 * written together count once, as they cost one wait. It relays bytes untouched.
 */
export interface CountingProxy {
  port: number;
  roundTrips(): number;
  /** CommandComplete "COMMIT" replies relayed: committed transactions. */
  commits(): number;
  close(): Promise<void>;
}

const COMMIT_TAG = Buffer.from('COMMIT\u0000');

export function startCountingProxy(target: { host: string; port: number }): Promise<CountingProxy> {
  let roundTrips = 0;
  let commits = 0;
  const sockets = new Set<import('node:net').Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(target);
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let clientTurn = false;
    client.on('data', (chunk) => {
      if (!clientTurn) {
        clientTurn = true;
        roundTrips++;
      }
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('data', (chunk) => {
      clientTurn = false;
      // CommandComplete "COMMIT": the statement text is not resent once it is prepared.
      for (let at = chunk.indexOf(COMMIT_TAG); at >= 0; at = chunk.indexOf(COMMIT_TAG, at + 1)) commits++;
      if (!client.write(chunk)) upstream.pause();
    });
    upstream.on('drain', () => client.resume());
    client.on('drain', () => upstream.resume());
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve({
        port: typeof address === 'object' && address ? address.port : 0,
        roundTrips: () => roundTrips,
        commits: () => commits,
        close: () =>
          new Promise((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
