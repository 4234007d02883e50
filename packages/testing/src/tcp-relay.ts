import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './ports.ts';

/**
 * A TCP relay to a real Postgres or Redis on a port of its own, for "the server goes away" (or
 * "one pod loses it") without touching the shared server: `cut()` drops every connection and
 * refuses new ones (as a stopped server does), `restore()` relays again on the same port.
 * `replyDelayMs` holds back what the server sends to its clients that long (in order), for "this
 * pod hears the bus late" (a slow path, a busy subscriber).
 */
export interface TcpRelay {
  /** The server's URL with its host and port replaced by the relay's. */
  url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpRelay(serverUrl: string, options: { listening?: boolean; replyDelayMs?: number } = {}): Promise<TcpRelay> {
  const replyDelayMs = options.replyDelayMs ?? 0;
  const target = new URL(serverUrl);
  if (!target.port) throw new Error(`startTcpRelay needs an explicit port: ${serverUrl}`);
  const port = await freePort();
  const url = new URL(serverUrl);
  url.host = `127.0.0.1:${port}`;
  const open = new Set<Socket>();
  let server: Server | null = null;

  const listen = async () => {
    if (server) return;
    const relay = createServer((client: Socket) => {
      const upstream = connect(Number(target.port), target.hostname);
      for (const socket of [client, upstream]) {
        open.add(socket);
        socket.once('close', () => open.delete(socket));
      }
      client.pipe(upstream);
      if (replyDelayMs <= 0) upstream.pipe(client);
      else {
        // Timers of one duration fire in the order they were set: the replies keep their order.
        upstream.on('data', (chunk: Buffer) => setTimeout(() => client.destroyed || client.write(chunk), replyDelayMs));
        upstream.once('end', () => setTimeout(() => client.end(), replyDelayMs));
      }
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve));
    server = relay;
  };
  const cut = async () => {
    const closing = server;
    server = null;
    for (const socket of open) socket.destroy();
    if (closing) await new Promise<void>((resolve) => closing.close(() => resolve()));
  };

  if (options.listening !== false) await listen();
  return { url: url.toString(), cut, restore: listen, close: cut };
}
