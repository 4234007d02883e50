import type { RoomJoinedPayload, RoomLeftPayload } from '@chat/protocol';
import type { ChatSocket } from './types.ts';

/** The events that tell a client whether its user is a member of a room (PROTOCOL §2, §3). */
type MembershipEvent = 'room-joined' | 'room-left';

interface Heard {
  event: MembershipEvent;
  /** The room's change number the event speaks as of: room-joined's `lastChangeSeq`, room-left's `changeSeq`. */
  seq: number;
  payload: RoomJoinedPayload | RoomLeftPayload;
}

/**
 * The newest membership event each socket heard, per room; made on a socket's first one (a
 * socket holds no object of the gateway's beyond `socket.data`, which is full: types.ts).
 */
const newest = new WeakMap<ChatSocket, Map<string, Heard>>();
/**
 * Rooms remembered per socket, the least recently heard forgotten first: a late event trails
 * the newer one by a bus hop or a query's round trip, not by dozens of other rooms' changes.
 */
const REMEMBERED_ROOMS = 64;

/**
 * An outgoing-packet listener (`socket.onAnyOutgoing`), shared by every socket, that keeps the
 * last membership event each socket hears true to the database. A join and a leave of one user
 * on two pods each answer the user's devices from their own pod, the join's `room-joined` and
 * the leave's `room-left` taking different ways (a socket's own emit, the bus, a held reply)
 * and arriving in either order; the database ordered them, and both carry the room's change
 * number. When an event older than the newest one the socket heard for the room goes out,
 * that newest one is sent again after it. Queued, not sent here: the listener runs before the
 * packet is written, and the ack of a `join-room` comes later still (so the caller has heard
 * the last word by the time it reads its answer).
 */
export function keepMembershipOrder(this: ChatSocket, event: string, payload?: unknown): void {
  if (event !== 'room-joined' && event !== 'room-left') return;
  const { roomId, changeSeq, lastChangeSeq } = (payload ?? {}) as { roomId?: unknown; changeSeq?: unknown; lastChangeSeq?: unknown };
  if (typeof roomId !== 'string') return;
  // Clients may spell a room id in capitals; the room is the same.
  const room = roomId.toLowerCase();
  const seq = event === 'room-joined' ? lastChangeSeq : changeSeq;
  let rooms = newest.get(this);
  if (typeof seq !== 'number') {
    // From a pod that numbers no room-left yet: its place in the order is unknown.
    rooms?.delete(room);
    return;
  }
  const known = rooms?.get(room);
  if (known && seq < known.seq) {
    if (known.event !== event) {
      const socket = this;
      queueMicrotask(() => (socket.emit as (event: MembershipEvent, payload: Heard['payload']) => boolean)(known.event, known.payload));
    }
    return;
  }
  if (!rooms) newest.set(this, (rooms = new Map()));
  // Equal numbers: a repeat join's answer and the room-left that follows it (join-room.handler.ts), the later the truer.
  rooms.delete(room);
  rooms.set(room, { event, seq, payload: payload as Heard['payload'] });
  if (rooms.size > REMEMBERED_ROOMS) rooms.delete(rooms.keys().next().value!);
}
