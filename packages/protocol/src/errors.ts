/**
 * The error catalog: every stable code with its user-facing Korean message (byte-exact from
 * docs/PROTOCOL.md §11) and the HTTP status it maps to when it surfaces over REST.
 */
export const ERRORS = {
  AUTH_REQUIRED: { status: 401, message: '인증 토큰이 필요합니다' },
  INVALID_TOKEN: { status: 401, message: '유효하지 않은 토큰입니다' },
  TOKEN_EXPIRED: { status: 401, message: '유효하지 않은 토큰입니다' },
  UNAUTHORIZED: { status: 401, message: '인증이 필요합니다' },
  ROOM_ID_REQUIRED: { status: 400, message: 'roomId가 필요합니다' },
  ROOM_NOT_FOUND: { status: 404, message: '방을 찾을 수 없습니다' },
  ROOM_EXPIRED: { status: 410, message: '만료된 방입니다' },
  NOT_A_MEMBER_LEAVE: { status: 403, message: '참여 중인 방이 아닙니다' },
  NOT_A_MEMBER: { status: 403, message: '방에 참여 중이 아닙니다' },
  INVALID_MESSAGE_TYPE: { status: 400, message: '유효하지 않은 메시지 타입입니다' },
  CONTENT_REQUIRED: { status: 400, message: '메시지 내용을 입력해주세요' },
  MESSAGE_TOO_LONG: { status: 400, message: '메시지는 1000자 이하여야 합니다' },
  INVALID_IMAGE_URL: { status: 400, message: '유효한 이미지 URL이 필요합니다' },
  INVALID_EMOJI: { status: 400, message: '유효하지 않은 이모지입니다' },
  INVALID_CONTENT: { status: 400, message: '유효하지 않은 메시지 내용입니다' },
  INVALID_CLIENT_MESSAGE_ID: {
    status: 400,
    message: 'clientMessageId는 1~64자의 문자열이어야 합니다',
  },
  RATE_LIMITED: {
    status: 429,
    message: '메시지 전송 한도를 초과했습니다. 잠시 후 다시 시도해주세요',
  },
  /** [ext] A client's requests to `/api/*` over the per-minute budget; a handshake past a user's sockets across the cluster; join-room / leave-room past the user's membership changes per minute; POST /api/rooms past the user's rooms per minute; any socket event once the user's failed events per minute are spent. */
  TOO_MANY_REQUESTS: { status: 429, message: '요청이 너무 많습니다. 잠시 후 다시 시도해주세요' },
  /** [ext] join-room by a user who already belongs to MAX_ROOMS_PER_USER live rooms (§15). */
  TOO_MANY_ROOMS: { status: 403, message: '참여할 수 있는 방의 수를 초과했습니다' },
  UNAVAILABLE: { status: 503, message: '일시적인 오류입니다. 잠시 후 다시 시도해주세요' },
  LIMIT_TOO_LARGE: { status: 400, message: 'limit은 100을 초과할 수 없습니다' },
  INVALID_LIMIT: { status: 400, message: 'limit은 1 이상의 정수여야 합니다' },
  BEFORE_NOT_FOUND: { status: 400, message: 'before 메시지를 찾을 수 없습니다' },
  AFTER_NOT_FOUND: { status: 400, message: 'after 메시지를 찾을 수 없습니다' },
  MESSAGE_NOT_FOUND: { status: 404, message: '메시지를 찾을 수 없습니다' },
  NOT_MESSAGE_OWNER: { status: 403, message: '본인의 메시지만 삭제할 수 있습니다' },
  INVALID_ROOM_NAME: { status: 400, message: '방 이름은 1~50자여야 합니다' },
  INVALID_TTL: { status: 400, message: 'ttlSeconds는 1~86400 사이의 정수여야 합니다' },
  INVALID_NICKNAME: { status: 400, message: '닉네임은 1~30자여야 합니다' },
  INVALID_REQUEST: { status: 400, message: '잘못된 요청입니다' },
  /** [ext] Server API (§17): no `X-Api-Key` header. */
  API_KEY_REQUIRED: { status: 401, message: 'API 키가 필요합니다' },
  /** [ext] Server API: a key that matches no configured key. */
  INVALID_API_KEY: { status: 401, message: '유효하지 않은 API 키입니다' },
  /** [ext] Server API: a configured key that has been revoked. */
  API_KEY_REVOKED: { status: 401, message: '폐기된 API 키입니다' },
  /** [ext] Server API (§17): an Idempotency-Key this API key already used for a different request. */
  IDEMPOTENCY_KEY_REUSED: { status: 422, message: 'Idempotency-Key가 다른 요청에 이미 사용되었습니다' },
  NOT_FOUND: { status: 404, message: '요청한 경로를 찾을 수 없습니다' },
  INTERNAL: { status: 500, message: '서버 오류가 발생했습니다' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * The one application error. Domain code throws it; the HTTP error handler and the socket
 * ack helper are the only places that translate it for the wire.
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, details?: Record<string, unknown>) {
    super(ERRORS[code].message);
    this.name = 'AppError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = details;
  }
}

export function isAppError(value: unknown): value is AppError {
  return value instanceof AppError;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}
