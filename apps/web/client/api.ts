import { clockOffsetMs } from './server-clock.ts';
import type {
  createdRoomSchema,
  devLoginResponseSchema,
  HistoryMessage,
  RoomChange,
  roomMembersSchema,
  RoomView,
} from '@chat/protocol';

/** The type a zod schema of @chat/protocol parses to (without a zod import of our own). */
type Infer<Schema> = Schema extends { _zod: { output: infer Output } } ? Output : never;

export type DevLogin = Infer<typeof devLoginResponseSchema>;
export type CreatedRoom = Infer<typeof createdRoomSchema>;
export type RoomMembers = Infer<typeof roomMembersSchema>;
export type { HistoryMessage, RoomChange, RoomView };

/**
 * A failed REST call: `message` is the server's (Korean) message from the error body;
 * `retryAfterMs` how long the server asked to wait (its `Retry-After`, on 429 and 503).
 */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** A `Retry-After` header (seconds, or an HTTP date) in milliseconds from `now`; null when absent or unreadable. */
export function parseRetryAfter(header: string | null, now: number): number | null {
  if (header === null || header.trim() === '') return null;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * The server says the user is not a member of the room (403 `NOT_A_MEMBER`, e.g. from the
 * members route): they left on another device or a backend removed them (PROTOCOL §9, §17).
 */
export function isNotAMember(error: unknown): boolean {
  return error instanceof ApiError && error.status === 403 && error.code === 'NOT_A_MEMBER';
}

export const NETWORK_ERROR_MESSAGE = '서버에 연결할 수 없습니다';

/** The member list shows at most this many pages of 100 (a room's count is shown whole). */
const MEMBER_PAGES = 20;

/**
 * The REST API of PROTOCOL §7–9 on `base` (the page's own origin). `onClockOffset` hears the
 * server's clock minus the page's after every answer (server-clock.ts).
 */
export function createApi(base: string, token: () => string | null, onClockOffset: (offsetMs: number) => void = () => undefined) {
  async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    const bearer = token();
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    const sentAt = Date.now();
    try {
      response = await fetch(base + path, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch {
      throw new ApiError(NETWORK_ERROR_MESSAGE, 0, 'NETWORK');
    }
    const offset = clockOffsetMs(response.headers.get('date'), sentAt, Date.now());
    if (offset !== null) onClockOffset(offset);
    const data: unknown = await response.json().catch(() => null);
    if (!response.ok) {
      const record = typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
      const message = typeof record.message === 'string' ? record.message : `HTTP ${response.status}`;
      const code = typeof record.code === 'string' ? record.code : 'HTTP';
      throw new ApiError(message, response.status, code, parseRetryAfter(response.headers.get('retry-after'), Date.now()));
    }
    return data as T;
  }

  const room = (roomId: string) => `/api/rooms/${encodeURIComponent(roomId)}`;

  return {
    login: (nickname: string) => request<DevLogin>('POST', '/api/auth/token', { nickname }),
    /** A page of the open rooms, newest first: the first, or the one after the room `before` (PROTOCOL §9). */
    rooms: (limit: number, before?: string) => {
      const params = new URLSearchParams({ limit: String(limit) });
      if (before) params.set('before', before);
      return request<{ rooms: RoomView[]; hasMore: boolean }>('GET', `/api/rooms?${params}`);
    },
    createRoom: (name: string, ttlSeconds?: number) =>
      request<CreatedRoom>('POST', '/api/rooms', ttlSeconds ? { name, ttlSeconds } : { name }),
    room: (roomId: string) => request<RoomView>('GET', room(roomId)),
    /** Every member, page after page (100 at a time, at most MEMBER_PAGES pages). */
    members: async (roomId: string): Promise<{ members: RoomMembers['members']; memberCount: number }> => {
      const members: RoomMembers['members'] = [];
      let page = await request<RoomMembers>('GET', `${room(roomId)}/members?limit=100`);
      members.push(...page.members);
      for (let pages = 1; page.hasMore && pages < MEMBER_PAGES && page.members.length > 0; pages++) {
        const after = encodeURIComponent(page.members[page.members.length - 1]!.userId);
        page = await request<RoomMembers>('GET', `${room(roomId)}/members?limit=100&after=${after}`);
        members.push(...page.members);
      }
      return { members, memberCount: page.memberCount };
    },
    /** Newest first without `after`; oldest first with it (PROTOCOL §7). */
    history: (roomId: string, query: { before?: string; after?: string; limit?: number } = {}) => {
      const params = new URLSearchParams({ limit: String(query.limit ?? 50) });
      if (query.before) params.set('before', query.before);
      if (query.after) params.set('after', query.after);
      return request<{ messages: HistoryMessage[]; hasMore: boolean }>('GET', `${room(roomId)}/messages?${params}`);
    },
    /** The room's changes after `after`, oldest first (PROTOCOL §16). */
    changes: (roomId: string, after: number, limit: number) =>
      request<{ changes: RoomChange[]; hasMore: boolean }>('GET', `${room(roomId)}/changes?after=${after}&limit=${limit}`),
    deleteMessage: (messageId: string) =>
      request<{ success: true }>('DELETE', `/api/messages/${encodeURIComponent(messageId)}`),
  };
}

export type Api = ReturnType<typeof createApi>;
