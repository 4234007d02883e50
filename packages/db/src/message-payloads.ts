import type { SenderKind } from './schema.ts';
import type { StoredMessage } from './repositories/messages.repository.ts';
import type { MessageSender, NewMessagePayload } from '@chat/protocol';

/** How a message's author is shown: the mask of the nickname, and who it is when not a person. */
export interface MessageAuthor {
  nicknameMask: string;
  sender?: MessageSender;
}

/**
 * The `new-message` payload of a stored message, the one builder for every place it is sent:
 * live and in the ack (gateway), and in the change feed and webhooks (`toRoomChange`).
 */
export function newMessagePayload(message: Omit<StoredMessage, 'expiresAt' | 'isDeleted'>, author: MessageAuthor): NewMessagePayload {
  return {
    messageId: message.id,
    roomId: message.roomId,
    userId: message.userId,
    nicknameMask: author.nicknameMask,
    type: message.type,
    content: message.content,
    imageUrl: message.imageUrl,
    createdAt: message.createdAt.toISOString(),
    seq: message.seq,
    clientMessageId: message.clientMessageId,
    changeSeq: message.changeSeq,
    ...(author.sender ? { sender: author.sender } : {}),
  };
}

/** `sender` for a stored bot / system author; nothing for a person. */
export function senderOf(row: { senderKind: SenderKind; senderId: string | null; nickname: string }): MessageSender | undefined {
  if (row.senderKind === 'user') return undefined;
  return { kind: row.senderKind, id: row.senderId ?? '', name: row.nickname };
}

/** The [ext] `sender` field of a history message, present only for bot / system senders. */
export function historySender(row: { senderKind: SenderKind; senderId: string | null; nickname: string }): { sender?: MessageSender } {
  const sender = senderOf(row);
  return sender ? { sender } : {};
}
