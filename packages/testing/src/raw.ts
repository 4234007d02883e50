import type { TestSocket } from './clients.ts';
import type { ServerToClientEvents } from '@chat/protocol';
import { sleep } from './clients.ts';

/** A request with a raw (possibly malformed) body, for what `request()` cannot send. */
export async function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  options: { body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; text: string; json: unknown }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: options.headers ?? {},
    ...(options.body === undefined ? {} : { body: options.body }),
  });
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json };
}

/**
 * Writes a Socket.IO EVENT packet for the `/socket` namespace straight onto the engine.io
 * connection, bypassing socket.io-client's encoder: `argsJson` is sent byte for byte, so a
 * payload with an own `__proto__` key (as a JSON parser produces it) reaches the server as is.
 * `ackId` asks for an acknowledgement, which arrives as a raw ACK packet (see `rawAcks`).
 */
export function emitRawFrame(socket: TestSocket, argsJson: string, ackId?: number): void {
  socket.io.engine.write(`2/socket,${ackId ?? ''}${argsJson}`);
}

/** Raw Socket.IO ACK packets (`3/socket,<id>[...]`) received by the socket's engine. */
export function rawAcks(socket: TestSocket): Map<number, unknown[]> {
  const acks = new Map<number, unknown[]>();
  socket.io.engine.on('message', (data: unknown) => {
    if (typeof data !== 'string') return;
    const match = /^3\/socket,(\d+)(\[.*)$/s.exec(data);
    if (!match?.[1] || match[2] === undefined) return;
    acks.set(Number(match[1]), JSON.parse(match[2]) as unknown[]);
  });
  return acks;
}

/** Records every listed event for `ms` milliseconds; returns what arrived (event, payload). */
export async function recordFor(
  socket: TestSocket,
  events: readonly (keyof ServerToClientEvents)[],
  ms: number,
): Promise<{ event: string; payload: unknown }[]> {
  const seen: { event: string; payload: unknown }[] = [];
  const listeners = events.map((event) => {
    const listener = (payload: unknown) => seen.push({ event, payload });
    socket.on(event, listener as never);
    return [event, listener] as const;
  });
  await sleep(ms);
  for (const [event, listener] of listeners) socket.off(event, listener as never);
  return seen;
}
