import type { IncomingMessage } from 'node:http';
import { stripBearer } from '@chat/auth';
import { AppError, ERRORS, type ErrorCode } from '@chat/protocol';
import type { Logger } from 'pino';
import type { RoomService } from '../services/room.service.ts';
import type { UserAuthService } from '../services/user-auth.service.ts';
import { toAppError } from '../errors/error-classification.ts';
import type { ChatSocket } from './types.ts';

/**
 * Socket.IO's `cors` option only sets headers; refusing a browser origin needs this check
 * before the handshake. Clients that send no Origin (servers, load tests) are not browsers.
 */
export function createOriginCheck(allowed: readonly string[]) {
  const any = allowed.includes('*');
  const set = new Set(allowed);
  return (request: IncomingMessage, callback: (error: string | null | undefined, success: boolean) => void) => {
    const origin = request.headers.origin;
    callback(null, origin === undefined || any || set.has(origin));
  };
}

function handshakeToken(socket: ChatSocket): string | null {
  const { auth, query, headers } = socket.handshake;
  const fromAuth = auth && typeof auth === 'object' ? stripBearer((auth as Record<string, unknown>).token) : null;
  return fromAuth ?? stripBearer(query.token) ?? stripBearer(headers.authorization);
}

function authError(code: ErrorCode): Error & { data: { code: ErrorCode } } {
  return Object.assign(new Error(ERRORS[code].message), { data: { code } });
}

/**
 * Namespace middleware: authenticates the token (PROTOCOL §1) and loads the user's rooms, so
 * that by the time the client sees `connect` the socket is already back in all of them.
 */
export function createHandshakeMiddleware(deps: {
  auth: UserAuthService;
  rooms: Pick<RoomService, 'activeRoomIdsOf'>;
  logger: Logger;
  onRefused?: (code: ErrorCode) => void;
  /**
   * A user's sockets on this pod, and how many one may have (0: no bound). Past it the
   * handshake is refused with TOO_MANY_REQUESTS [ext]: every socket costs the pod memory and
   * its handshake a database query, and no device needs dozens of them.
   */
  socketsOf?: (userId: string) => number;
  maxSocketsPerUser?: number;
}) {
  return (socket: ChatSocket, next: (error?: Error) => void) => {
    const token = handshakeToken(socket);
    if (!token) {
      deps.onRefused?.('AUTH_REQUIRED');
      next(authError('AUTH_REQUIRED'));
      return;
    }
    (async () => {
      const user = await deps.auth.authenticate(token);
      const max = deps.maxSocketsPerUser ?? 0;
      if (max > 0 && deps.socketsOf && deps.socketsOf(user.id) >= max) throw new AppError('TOO_MANY_REQUESTS');
      const roomIds = await deps.rooms.activeRoomIdsOf(user.id);
      socket.data.user = user;
      socket.data.initialRoomIds = roomIds;
      socket.data.typingRooms = new Set();
      socket.data.inFlight = 0;
    })().then(
      () => next(),
      (error: unknown) => {
        const appError = error instanceof AppError ? error : toAppError(error);
        if (!(error instanceof AppError)) {
          deps.logger.error({ err: error, socketId: socket.id }, 'handshake failed');
        }
        deps.onRefused?.(appError.code);
        next(authError(appError.code));
      },
    );
  };
}
