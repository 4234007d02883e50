import type { Logger } from 'pino';
import type { ChatNamespace, ChatSocket } from './types.ts';

const SETTLE_POLL_MS = 10;
const SETTLE_LIMIT_MS = 3000;

/**
 * Waits until the socket has no event in flight (its send is committed and acknowledged), at
 * most SETTLE_LIMIT_MS: what a pod does before closing a socket itself (drain, token expiry).
 */
export async function settled(socket: ChatSocket): Promise<void> {
  const deadline = Date.now() + SETTLE_LIMIT_MS;
  while ((socket.data.inFlight ?? 0) > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, SETTLE_POLL_MS));
  }
}

function shuffled<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * Graceful drain of this pod's sockets: every client hears `server-draining` (so it can
 * reconnect elsewhere at once), then sockets are closed in shuffled batches spread over the
 * window — a thousand clients must not all reconnect to the other pods in the same instant.
 * A socket is closed only once its in-flight events have been answered.
 */
export async function drainSockets(nsp: ChatNamespace, windowMs: number, logger: Logger): Promise<void> {
  const sockets = shuffled([...nsp.sockets.values()]);
  // `local`: only this pod's sockets, not the whole cluster's through the adapter.
  nsp.local.emit('server-draining', {});
  logger.info({ sockets: sockets.length, windowMs }, 'draining sockets');
  if (sockets.length === 0) return;
  const batches = Math.max(1, Math.min(sockets.length, Math.ceil(windowMs / 100)));
  const perBatch = Math.ceil(sockets.length / batches);
  const pause = batches > 1 ? windowMs / batches : 0;
  for (let start = 0; start < sockets.length; start += perBatch) {
    const batch = sockets.slice(start, start + perBatch);
    await Promise.all(
      batch.map(async (socket) => {
        await settled(socket);
        socket.disconnect(true);
      }),
    );
    if (start + perBatch < sockets.length && pause > 0) {
      await new Promise((resolve) => setTimeout(resolve, pause * (0.5 + Math.random())));
    }
  }
}
