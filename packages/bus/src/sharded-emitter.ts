import { mainChannel, roomBusChannel } from './bus-config.ts';

/**
 * The version of @socket.io/redis-adapter whose sharded wire format this emitter writes. The
 * contract test (test/bus/sharded-emitter.contract.test.ts) fails when the installed adapter is
 * another version: re-read its dist/sharded-adapter.js and socket.io-adapter's cluster-adapter
 * before moving this.
 */
export const SHARDED_ADAPTER_VERSION = '8.3.0';

/**
 * socket.io-adapter's cluster MessageType values (2.5.x): the numbers on the wire.
 */
const MessageType = {
  BROADCAST: 3,
  SOCKETS_JOIN: 4,
  SOCKETS_LEAVE: 5,
  DISCONNECT_SOCKETS: 6,
} as const;

/** socket.io-parser's EVENT packet type. */
const EVENT_PACKET = 2;

/**
 * The adapter drops messages carrying its own uid; "emitter" is what @socket.io/redis-emitter
 * uses, and no adapter's random 16-hex-digit uid can equal it.
 */
const EMITTER_UID = 'emitter';

/** What the emitter needs of a bus client: ioredis `Redis` and `Cluster` both have it. */
export interface BusPublishClient {
  spublish(channel: string, message: string): Promise<unknown>;
}

/** An interface of `event: (payload) => void` signatures, as @chat/protocol's ServerToClientEvents. */
type EventMap = object;
type EventArgs<Events, E extends keyof Events> = Events[E] extends (...args: infer A) => unknown ? A : never;

export interface BroadcastTarget<Events extends EventMap> {
  /** Leaves out the sockets in `room` (e.g. a user's own `user:<id>` room). */
  except(room: string | readonly string[]): BroadcastTarget<Events>;
  /**
   * Sends the event to the target's sockets on every pod. Resolves true once Redis took the
   * publish, false if it failed (reported to `onError`): announcements are at most once.
   */
  emit<E extends keyof Events & string>(event: E, ...args: EventArgs<Events, E>): Promise<boolean>;
  /** Puts the target's sockets, on every pod, into `rooms` (main channel, as socketsJoin). */
  socketsJoin(rooms: string | readonly string[]): Promise<boolean>;
  socketsLeave(rooms: string | readonly string[]): Promise<boolean>;
  /** Disconnects the target's sockets on every pod; `close` also closes their connection. */
  disconnectSockets(close?: boolean): Promise<boolean>;
}

export interface ShardedEmitter<Events extends EventMap> {
  to(room: string | readonly string[]): BroadcastTarget<Events>;
  in(room: string | readonly string[]): BroadcastTarget<Events>;
}

function looksLikeASocketId(room: string): boolean {
  // The adapter's own test: a room of exactly 20 characters is taken for a socket id and
  // never given a channel of its own.
  return room.length === 20;
}

/**
 * Emits into a cluster of gateways running `createShardedAdapter(pub, sub, { subscriptionMode:
 * 'dynamic', channelPrefix })` from outside it (the worker), in that adapter's exact format:
 * a broadcast to exactly one room goes by SPUBLISH to the room's channel, to which only pods
 * holding a member are subscribed; membership moves, disconnects and any other broadcast go to
 * the namespace's main channel, where every pod listens. @socket.io/redis-emitter speaks only
 * the classic adapter's PUBLISH/PSUBSCRIBE format (its issue #127).
 */
export function createShardedEmitter<Events extends EventMap>(
  client: BusPublishClient,
  options: { channelPrefix: string; nsp: string; onError?: (error: unknown, channel: string) => void },
): ShardedEmitter<Events> {
  const { channelPrefix, nsp } = options;
  const main = mainChannel(channelPrefix, nsp);

  const publish = (channel: string, message: object): Promise<boolean> =>
    client.spublish(channel, JSON.stringify({ uid: EMITTER_UID, nsp, ...message })).then(
      () => true,
      (error: unknown) => {
        options.onError?.(error, channel);
        return false;
      },
    );

  const target = (rooms: readonly string[], except: readonly string[]): BroadcastTarget<Events> => {
    const opts = { rooms: [...rooms], except: [...except], flags: {} };
    return {
      except: (room) => target(rooms, [...new Set([...except, ...(typeof room === 'string' ? [room] : room)])]),
      emit: (event, ...args) => {
        const single = rooms.length === 1 && !looksLikeASocketId(rooms[0]!);
        const channel = single ? roomBusChannel(channelPrefix, nsp, rooms[0]!) : main;
        return publish(channel, {
          type: MessageType.BROADCAST,
          data: { packet: { type: EVENT_PACKET, data: [event, ...args], nsp }, opts },
        });
      },
      socketsJoin: (joined) =>
        publish(main, { type: MessageType.SOCKETS_JOIN, data: { opts, rooms: typeof joined === 'string' ? [joined] : [...joined] } }),
      socketsLeave: (left) =>
        publish(main, { type: MessageType.SOCKETS_LEAVE, data: { opts, rooms: typeof left === 'string' ? [left] : [...left] } }),
      disconnectSockets: (close = false) => publish(main, { type: MessageType.DISCONNECT_SOCKETS, data: { opts, close } }),
    };
  };
  const to = (room: string | readonly string[]) => target(typeof room === 'string' ? [room] : [...new Set(room)], []);
  return { to, in: to };
}
