import { nicknameMask, type RoomChange } from '@chat/protocol';
import type { ChangeRow } from './repositories/room-changes.repository.ts';
import { newMessagePayload, senderOf } from './message-payloads.ts';

/**
 * A stored change as the feed shows it (PROTOCOL §16): the live event it was announced with and
 * that event's payload, built the same way for the changes route (gateway) and the webhooks
 * (worker). A message deleted since has no content in its `new-message`; its `message-deleted`
 * follows later in the feed.
 */
export function toRoomChange(row: ChangeRow): RoomChange {
  const base = { roomId: row.roomId, changeSeq: row.changeSeq };
  const payload = ((): Record<string, unknown> => {
    switch (row.event) {
      case 'new-message': {
        const message = row.message!;
        return newMessagePayload(
          { ...message, roomId: row.roomId, changeSeq: row.changeSeq },
          { nicknameMask: nicknameMask(message.nickname), sender: senderOf(message) },
        );
      }
      case 'message-deleted':
        return { roomId: row.roomId, messageId: row.message!.id, changeSeq: row.changeSeq };
      case 'user-joined':
        return {
          roomId: row.roomId,
          userId: row.userId,
          nicknameMask: nicknameMask(row.nickname ?? ''),
          memberCount: row.memberCount,
          changeSeq: row.changeSeq,
        };
      case 'user-left':
        return { roomId: row.roomId, userId: row.userId, memberCount: row.memberCount, changeSeq: row.changeSeq };
      case 'room-expiring':
      case 'room-lifetime-changed':
        return { roomId: row.roomId, expiresAt: row.expiresAt?.toISOString() ?? null, changeSeq: row.changeSeq };
      case 'room-expired':
      case 'room-occupied':
      case 'room-vacated':
        return { roomId: row.roomId, changeSeq: row.changeSeq };
    }
  })();
  return { ...base, event: row.event, payload };
}
