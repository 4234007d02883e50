import { roomChannel } from '@chat/protocol';
import type { MembershipHint } from '../services/message.service.ts';
import type { ChatSocket } from './types.ts';

/** What `roomChannel` puts before a room id: the channels of rooms, among a socket's others. */
const ROOM_CHANNEL_PREFIX = roomChannel('');

/**
 * A socket is in a room's channel exactly when its user is a member (docs/ARCHITECTURE.md): the
 * realtime layer reads memberships from the socket instead of the database.
 */
export function isInRoom(socket: ChatSocket, roomId: string): boolean {
  return socket.rooms.has(roomChannel(roomId));
}

/** The room id of a room's channel; null for any other channel (a socket's own, a user's). */
export function roomIdOfChannel(channel: string): string | null {
  return channel.startsWith(ROOM_CHANNEL_PREFIX) ? channel.slice(ROOM_CHANNEL_PREFIX.length) : null;
}

/** The rooms whose channel the socket is in (not its own id, not its user's channel). */
export function roomIdsOf(socket: ChatSocket): string[] {
  return [...socket.rooms]
    .filter((channel) => channel.startsWith(ROOM_CHANNEL_PREFIX))
    .map((channel) => channel.slice(ROOM_CHANNEL_PREFIX.length));
}

/**
 * The socket as the message service's membership hint. Made per message rather than kept on
 * the socket: an idle connection then holds no hint (and no closures) of its own.
 */
export class SocketMembership implements MembershipHint {
  constructor(private readonly socket: ChatSocket) {}

  isInRoom(roomId: string): boolean {
    return isInRoom(this.socket, roomId);
  }

  enterRoom(roomId: string): void {
    void this.socket.join(roomChannel(roomId));
  }
}
