import type {
  MessageDeletedPayload,
  NewMessagePayload,
  RoomLeftPayload,
  RoomLifetimeChangedPayload,
  UserJoinedPayload,
  UserLeftPayload,
} from '@chat/protocol';

/**
 * What the services need from the realtime layer, and nothing more: they say what happened,
 * the realtime layer decides how it reaches sockets on every pod.
 */
export interface RoomEvents {
  /**
   * Before the user is written a member: this pod hears the room from the moment it resolves,
   * so every change committed after the write reaches the user's sockets here live. Call the
   * release once `addUserToRoom` has run, or when the write did not happen.
   */
  hearRoomBeforeJoin(roomId: string): Promise<() => void>;
  /** Puts every socket of the user, on every pod, into the room. */
  addUserToRoom(userId: string, roomId: string): void;
  /** Takes every socket of the user, on every pod, out of the room. */
  removeUserFromRoom(userId: string, roomId: string): void;
  userJoined(payload: UserJoinedPayload): void;
  userLeft(payload: UserLeftPayload): void;
  newMessage(payload: NewMessagePayload): void;
  messageDeleted(payload: MessageDeletedPayload): void;
  /** `room-left` to every device of the user (a removal by the server API). */
  roomLeftToUser(userId: string, payload: RoomLeftPayload): void;
  /** Disconnects every socket of the user, on every pod. */
  disconnectUser(userId: string): void;
  /** The room's expiry changed: every pod drops what it cached of it, and the room hears `room-lifetime-changed`. */
  roomLifetimeChanged(payload: RoomLifetimeChangedPayload): void;
}
