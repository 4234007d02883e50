import type { ChatSocket } from './types.ts';

/**
 * What the gateway touches beneath Socket.IO, in one place: Engine.IO's write buffer and its
 * `ws` transport, whose socket is the TCP connection. None of it is public API; an upgrade of
 * engine.io or ws that moves it shows up here (and in the tests of slow consumers and event
 * backlogs), not across the realtime layer.
 */
interface EngineConnection {
  writeBuffer: { data?: unknown; options?: { wsPreEncodedFrame?: readonly Uint8Array[] } }[];
  transport: {
    socket?: {
      bufferedAmount?: number;
      terminate?: () => void;
      _socket?: { pause(): void; resume(): void };
    };
  };
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

/** Stops or resumes reading the socket's TCP connection: TCP then pushes back on the client. */
export function setReading(socket: ChatSocket, reading: boolean): void {
  const tcp = engineOf(socket).transport.socket?._socket;
  if (reading) tcp?.resume();
  else tcp?.pause();
}
