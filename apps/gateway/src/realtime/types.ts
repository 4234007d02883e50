import type { Namespace, Socket } from 'socket.io';
import type { ClientToServerEvents, ServerToClientEvents } from '@chat/protocol';
import type { AuthenticatedUser } from '../services/user-auth.service.ts';
import type { EventBacklog } from './event-slots.ts';
import type { TypingRooms } from './handlers/typing.handler.ts';

/** Between gateway pods, through the adapter (`serverSideEmit`). */
export interface InterServerEvents {
  /** The server API changed this room's expiry: drop it from the RoomCache. */
  'room-lifetime': (roomId: string) => void;
  /** A membership of this user moved on another pod: a pod holding the user's sockets checks them (membership-reconciler.ts). */
  'membership-check': (userId: string) => void;
}

/**
 * What the gateway keeps on a socket. At most four fields, the in-object room of Socket.IO's
 * `data = {}`: a fifth would give every socket a property store of its own. What only some
 * sockets need is created on first use.
 */
export interface SocketData {
  user: AuthenticatedUser;
  /** Events of this socket still being handled (running or waiting); a draining pod waits for them. */
  inFlight: number;
  /** Events waiting for one of the socket's slots (event-slots.ts); absent while none wait. */
  backlog?: EventBacklog | undefined;
  /** The rooms where this socket's last `typing` said `true`; absent while there are none. */
  typing?: TypingRooms | undefined;
}

export type ChatNamespace = Namespace<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type ChatSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
