import type { Namespace, Socket } from 'socket.io';
import type { ClientToServerEvents, ServerToClientEvents } from '@chat/protocol';
import type { AuthenticatedUser } from '../services/user-auth.service.ts';

/** Between gateway pods, through the adapter (`serverSideEmit`). */
export interface InterServerEvents {
  /** The server API changed this room's expiry: drop it from the RoomCache. */
  'room-lifetime': (roomId: string) => void;
}

export interface SocketData {
  user: AuthenticatedUser;
  /** Rooms of the user at handshake time; the socket enters them on connect. */
  initialRoomIds: string[];
  /** Rooms where this socket last said `isTyping: true`, cleared on disconnect. */
  typingRooms: Set<string>;
  /** Events of this socket still being handled; a draining pod waits for them. */
  inFlight: number;
}

export type ChatNamespace = Namespace<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type ChatSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
