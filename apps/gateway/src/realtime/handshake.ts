import type { IncomingMessage } from 'node:http';
import { stripBearer } from '@chat/auth';
import { AppError, ERRORS, roomChannel, userChannel, type ErrorCode } from '@chat/protocol';
import type { Logger } from 'pino';
import type { UserAuthService } from '../services/user-auth.service.ts';
import type { SocketLeases } from '../infrastructure/socket-leases.ts';
import type { UserRateLimiter } from '../infrastructure/user-rate-limiter.ts';
import { toAppError } from '../errors/error-classification.ts';
import type { MembershipReconciler } from './membership-reconciler.ts';
import type { SubscriptionBarrier } from './subscription-barrier.ts';
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

/**
 * Socket.IO keeps the handshake for the socket's whole life, and with it the token the client
 * sent in `auth`: a credential nothing reads after this middleware, and ~200 bytes on every
 * connection (issue 17, memory per idle connection). (One sent in the query string or a header
 * stays where the HTTP request keeps it.)
 */
function forgetToken(socket: ChatSocket): void {
  const { auth } = socket.handshake;
  if (auth && typeof auth === 'object') delete (auth as Record<string, unknown>).token;
}

function authError(error: AppError): Error & { data: { code: ErrorCode; retryAfterMs?: number } } {
  const retryAfterMs = error.details?.retryAfterMs;
  return Object.assign(new Error(ERRORS[error.code].message), { data: { code: error.code, ...(typeof retryAfterMs === 'number' ? { retryAfterMs } : {}) } });
}

/**
 * Namespace middleware: authenticates the token (PROTOCOL §1), takes one of the user's socket
 * places, loads the user and their rooms (one query shared by the handshakes of a loop turn:
 * UserAuthService.connect) and puts the socket into them (and its user's room), so that by
 * the time the client sees `connect` the socket is already back in all of them — and this pod's
 * subscriptions to them are confirmed (subscription-barrier.ts): a message sent after the client
 * connected reaches it.
 *
 * The place is reserved right after the signature check and the handshake budget, before the
 * database is asked anything: the reservation is atomic across pods, so concurrent handshakes
 * of one user cannot all pass a count, and a user past the cap costs no query. It comes after
 * the signature check because the user id is only known then (a forged token must not take a
 * real user's places).
 */
export function createHandshakeMiddleware(deps: {
  auth: UserAuthService;
  logger: Logger;
  onRefused?: (code: ErrorCode) => void;
  /**
   * The user's socket places across the cluster (MAX_SOCKETS_PER_USER [ext]); absent: no bound.
   * Past it the handshake is refused with TOO_MANY_REQUESTS: every socket costs a pod memory and
   * its handshake a database query, and no device needs dozens of them.
   */
  leases?: SocketLeases;
  /**
   * Handshakes per user across the cluster (HANDSHAKE_RATE_LIMIT_PER_MINUTE [ext]); absent: no
   * bound. Charged after the signature check (a forged token must not spend a real user's
   * budget) and before the socket place and the database: past it, TOO_MANY_REQUESTS with
   * `retryAfterMs`, at the price of one Redis call.
   */
  handshakes?: UserRateLimiter;
  barrier: SubscriptionBarrier;
  /** Sockets mirror membership: moves during the handshake are caught up with (membership-reconciler.ts). */
  memberships: Pick<MembershipReconciler, 'watchHandshake'>;
}) {
  const { leases } = deps;
  return (socket: ChatSocket, next: (error?: Error) => void) => {
    const token = handshakeToken(socket);
    forgetToken(socket);
    if (!token) {
      deps.onRefused?.('AUTH_REQUIRED');
      next(authError(new AppError('AUTH_REQUIRED')));
      return;
    }
    let reservedFor: string | null = null;
    (async () => {
      const verified = await deps.auth.verify(token);
      await deps.handshakes?.consume(verified.userId);
      if (leases) {
        const reservation = await leases.reserve(verified.userId, socket.id);
        if (reservation === 'full') throw new AppError('TOO_MANY_REQUESTS');
        reservedFor = verified.userId;
      }
      // A move of the user's membership from the read on misses this socket until it is
      // connected: the reconciler checks the user's sockets once it is, if one came.
      const watched = deps.memberships.watchHandshake(verified.userId);
      try {
        const { user, roomIds } = await deps.auth.connect(verified);
        socket.data.user = user;
        socket.data.inFlight = 0;
        // Joined before `connect` (a socket whose client leaves meanwhile is cleaned up by
        // Socket.IO); the handshake completes once this pod hears those rooms.
        const rooms = [userChannel(user.id), ...roomIds.map(roomChannel)];
        await socket.join(rooms);
        await deps.barrier.settle(socket.id, rooms);
      } finally {
        // Nothing but microtasks from here to the socket's connection (`next`, then Socket.IO's
        // nextTick): no move can come in between.
        watched();
      }
    })().then(
      () => {
        // A client that hung up while this ran gets neither `connection` nor `disconnecting`:
        // Socket.IO drops the socket silently once `next` is called (namespace.js `_add`), so
        // the place would stay taken for as long as this pod lives.
        if (reservedFor !== null && socket.conn.readyState !== 'open') void leases?.release(reservedFor, socket.id);
        next();
      },
      async (error: unknown) => {
        // Given back before the refusal is sent: a client told "no" finds its place free.
        if (reservedFor !== null) await leases?.release(reservedFor, socket.id);
        const appError = error instanceof AppError ? error : toAppError(error);
        if (!(error instanceof AppError)) {
          deps.logger.error({ err: error, socketId: socket.id }, 'handshake failed');
        }
        deps.onRefused?.(appError.code);
        next(authError(appError));
      },
    );
  };
}
