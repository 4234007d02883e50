import { AppError } from './errors.ts';
import { codePointLength, field, hasForbiddenCharacters, isRecord, isUuid } from './fields.ts';

export const MESSAGE_TYPES = ['text', 'image', 'emoji'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export const TEXT_MAX_CHARACTERS = 1000;
export const EMOJI_MAX_CODE_POINTS = 16;
export const IMAGE_URL_MAX_LENGTH = 2048;
export const CLIENT_MESSAGE_ID_MAX_LENGTH = 64;

export interface MessageBody {
  type: MessageType;
  content: string | null;
  imageUrl: string | null;
  clientMessageId: string | null;
}

/**
 * The first rule every room event checks (PROTOCOL §6): a missing payload or roomId is
 * ROOM_ID_REQUIRED; a roomId that is not a UUID cannot name a room, so ROOM_NOT_FOUND.
 */
export function readRoomId(payload: unknown): string {
  const roomId = isRecord(payload) ? field(payload, 'roomId') : undefined;
  if (typeof roomId !== 'string' || roomId.length === 0) throw new AppError('ROOM_ID_REQUIRED');
  if (!isUuid(roomId)) throw new AppError('ROOM_NOT_FOUND');
  return roomId.toLowerCase();
}

function isMessageType(value: unknown): value is MessageType {
  return value === 'text' || value === 'image' || value === 'emoji';
}

// One or more emoji: pictographs, flags, keycaps, with their modifiers and joiners.
const EMOJI_SEQUENCE =
  /^(?:\p{Extended_Pictographic}|\p{Emoji_Modifier}|\p{Regional_Indicator}|[\u200d\ufe0f\u20e3#*0-9]|[\u{e0020}-\u{e007f}])+$/u;
const EMOJI_BASE = /\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3/u;

export function isEmoji(text: string): boolean {
  return (
    codePointLength(text) <= EMOJI_MAX_CODE_POINTS &&
    EMOJI_SEQUENCE.test(text) &&
    EMOJI_BASE.test(text)
  );
}

/** http(s) only (a bare `URL` parse also accepts `javascript:` and `data:`), no credentials. */
export function isImageUrl(value: unknown): value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > IMAGE_URL_MAX_LENGTH) {
    return false;
  }
  if (value.trim() !== value || hasForbiddenCharacters(value) || /\s/.test(value)) return false;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return (
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    url.hostname.length > 0 &&
    url.username === '' &&
    url.password === ''
  );
}

function readContent(payload: Readonly<Record<string, unknown>>): string {
  const content = field(payload, 'content');
  if (typeof content !== 'string' || content.trim().length === 0) {
    throw new AppError('CONTENT_REQUIRED');
  }
  return content;
}

function readClientMessageId(payload: Readonly<Record<string, unknown>>): string | null {
  const id = field(payload, 'clientMessageId');
  if (id === undefined || id === null) return null;
  if (
    typeof id !== 'string' ||
    id.length === 0 ||
    id.length > CLIENT_MESSAGE_ID_MAX_LENGTH ||
    hasForbiddenCharacters(id)
  ) {
    throw new AppError('INVALID_CLIENT_MESSAGE_ID');
  }
  return id;
}

/**
 * The type and content rules of `send-message`, applied after the room and membership
 * checks, in the order PROTOCOL §6 fixes: type → content → length. Only the named fields are
 * read; `content` is kept verbatim (clients escape on output).
 */
export function parseMessageBody(payload: unknown): MessageBody {
  const record = isRecord(payload) ? payload : {};
  const type = field(record, 'type');
  if (!isMessageType(type)) throw new AppError('INVALID_MESSAGE_TYPE');

  let content: string | null = null;
  let imageUrl: string | null = null;
  switch (type) {
    case 'text':
      content = readContent(record);
      if (content.length > TEXT_MAX_CHARACTERS && codePointLength(content) > TEXT_MAX_CHARACTERS) {
        throw new AppError('MESSAGE_TOO_LONG');
      }
      if (hasForbiddenCharacters(content)) throw new AppError('INVALID_CONTENT');
      break;
    case 'emoji':
      content = readContent(record);
      if (!isEmoji(content)) throw new AppError('INVALID_EMOJI');
      break;
    case 'image': {
      const url = field(record, 'imageUrl');
      if (!isImageUrl(url)) throw new AppError('INVALID_IMAGE_URL');
      imageUrl = url;
      break;
    }
  }
  return { type, content, imageUrl, clientMessageId: readClientMessageId(record) };
}

export interface TypingInput {
  roomId: string;
  isTyping: boolean;
}

/** Typing is best-effort: a malformed payload yields null and is dropped. */
export function parseTyping(payload: unknown): TypingInput | null {
  if (!isRecord(payload)) return null;
  const roomId = field(payload, 'roomId');
  const isTyping = field(payload, 'isTyping');
  if (!isUuid(roomId) || typeof isTyping !== 'boolean') return null;
  return { roomId: roomId.toLowerCase(), isTyping };
}
