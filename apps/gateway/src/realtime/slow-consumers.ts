import type { ChatNamespace, ChatSocket } from './types.ts';

/** The parts of Engine.IO's connection and of its `ws` transport that say what is queued. */
interface EngineConnection {
  writeBuffer: { data?: unknown; options?: { wsPreEncodedFrame?: readonly Uint8Array[] } }[];
  transport: { socket?: { bufferedAmount?: number; terminate?: () => void } };
}

const engineOf = (socket: ChatSocket) => socket.conn as unknown as EngineConnection;

function packetBytes(packet: EngineConnection['writeBuffer'][number]): number {
  const frame = packet.options?.wsPreEncodedFrame;
  if (frame) return frame.reduce((sum, part) => sum + part.byteLength, 0);
  const { data } = packet;
  if (typeof data === 'string') return data.length;
  return data instanceof Uint8Array ? data.byteLength : 0;
}

/**
 * What this pod holds for a socket that its client has not read yet: Engine.IO's write buffer
 * (packets that wait while the previous write has not reached the kernel) plus what `ws` and
 * the TCP socket hold. A client that stops reading makes it grow with every broadcast to its
 * rooms until the heartbeat gives up on it (pingInterval + pingTimeout, 40 s).
 */
export function queuedBytes(socket: ChatSocket): number {
  const engine = engineOf(socket);
  let bytes = engine.transport.socket?.bufferedAmount ?? 0;
  for (const packet of engine.writeBuffer) bytes += packetBytes(packet);
  return bytes;
}

/**
 * Closes the connection at once. A graceful close would wait for the stalled client to read
 * what is queued first (Engine.IO waits for `drain`, `ws` for its close frame to go out).
 */
export function dropConnection(socket: ChatSocket): void {
  const transport = engineOf(socket).transport.socket;
  if (typeof transport?.terminate === 'function') transport.terminate();
  else socket.disconnect(true);
}

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
