import { dropConnection, queuedBytes } from './engine-socket.ts';
import type { ChatNamespace, ChatSocket } from './types.ts';

/**
 * Every `intervalMs`, drops the sockets that hold more than `maxQueuedBytes` unread: one client
 * that stops reading (or reads slower than its rooms talk) must not grow the pod's memory until
 * the heartbeat notices. The client reconnects and catches up from the history, as after any
 * dropped connection. A sweep, not a check per delivery: the hot path stays as it is, and a
 * socket can overshoot by at most one interval of its rooms' traffic.
 */
export function startSlowConsumerSweep(options: {
  nsp: ChatNamespace;
  maxQueuedBytes: number;
  intervalMs: number;
  onDropped: (socket: ChatSocket, queued: number) => void;
}): { stop(): void } {
  const timer = setInterval(() => {
    for (const socket of options.nsp.sockets.values()) {
      const queued = queuedBytes(socket);
      if (queued <= options.maxQueuedBytes) continue;
      options.onDropped(socket, queued);
      dropConnection(socket);
    }
  }, options.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
