import { AppError, CLIENT_EVENTS, ERRORS, type AckResponse, type ClientEventName, type ErrorCode } from '@chat/protocol';
import { isDatabaseUnavailable, toAppError } from '../errors/error-classification.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { Logger } from 'pino';
import type { EventSlots } from './event-slots.ts';
import type { FailedEventBudget } from './failed-event-budget.ts';
import { isTokenExpired } from './token-expiry.ts';
import type { ChatSocket } from './types.ts';

type AnyAck = (response: AckResponse<unknown>) => void;

function safeAck(ack: AnyAck | undefined, response: AckResponse<unknown>): void {
  if (typeof ack !== 'function') return;
  try {
    ack(response);
  } catch {
    // A client-supplied ack can only fail on our side if the socket is gone: nothing to do.
  }
}

export interface HandlerContext {
  logger: Logger;
  metrics: GatewayMetrics;
  /** The pod's event slots: how many of a socket's events run at once. */
  slots: EventSlots<ChatSocket>;
  /** The user's budget of failed events (failed-event-budget.ts); absent: failures are free. */
  failures?: FailedEventBudget;
}

/** A socket event's handler, shared by every socket: the socket comes as an argument. */
export type SocketEventHandler<T> = (socket: ChatSocket, payload: unknown) => Promise<T>;

/**
 * Wraps one socket event: separates payload and ack whatever the client sent, runs the
 * handler, and answers success through the ack and failure through `error` + ack. Nothing a
 * client sends can turn into an unhandled rejection.
 *
 * `ordered`: the event runs alone in its socket's arrival order (event-slots.ts), for events that
 * change what the socket's later events may do (join-room, leave-room).
 *
 * Built once per pod and registered on every socket: the emitter calls it with the socket as
 * `this`, so a connection costs a listener slot, not closures of its own (issue 17, memory per
 * idle connection). Its counters are bound to their label here, once: prom-client hashes a
 * label set on every unbound call.
 */
export function guardedHandler<T>(
  event: ClientEventName,
  context: HandlerContext,
  handle: SocketEventHandler<T>,
  options: { ordered?: boolean } = {},
): (this: ChatSocket, ...args: unknown[]) => void {
  const ordered = options.ordered === true;
  const { logger, metrics, slots } = context;
  const received = metrics.eventsReceived.labels({ event });
  const ackDuration = metrics.ackDuration.labels({ event });
  return function onEvent(this: ChatSocket, ...args: unknown[]) {
    const socket = this;
    const last = args[args.length - 1];
    const ack = typeof last === 'function' ? (last as AnyAck) : undefined;
    const payload = ack && args.length === 1 ? undefined : args[0];
    received.inc();
    const stopTimer = ackDuration.startTimer();
    const userId = socket.data.user.id;
    // Judged as the event arrives: one sent before `exp` and still waiting its turn is served.
    const run = isTokenExpired(socket) ? refuseExpired : () => failing(userId, context.failures, () => handle(socket, payload));
    slots.run(socket, run, ordered).then(
      (data) => {
        safeAck(ack, { ok: true, data });
        stopTimer();
      },
      (error: unknown) => {
        const appError = toAppError(error);
        if (appError.code === 'INTERNAL' || appError.code === 'UNAVAILABLE') {
          logger.error({ err: error, event, socketId: socket.id, userId: socket.data.user?.id }, 'socket event failed');
        }
        if (appError.code === 'RATE_LIMITED') metrics.rateLimited.inc();
        if (appError.code === 'UNAVAILABLE' && isDatabaseUnavailable(error)) metrics.postgresErrors.inc();
        metrics.errors.inc({ event, code: appError.code });
        sendError(socket, event, appError.code, ack, appError.details);
        stopTimer();
      },
    );
  };
}

/** The events the protocol names (PROTOCOL §2–§5). */
const CLIENT_EVENT_NAMES: ReadonlySet<unknown> = new Set<unknown>(Object.values(CLIENT_EVENTS));

/**
 * The socket's `onAny` listener: answers an event the protocol does not name (a typo, a
 * `delete-message` — deleting is REST, §8) with INVALID_REQUEST, through `error` and the ack.
 * Socket.IO would drop it silently, and a client waiting on its acknowledgement would wait for
 * good, where every event is answered (§6, §14). It takes its turn in the socket's order and
 * within the user's failed-event budget like any event; its metrics say `unknown`, never the
 * client's string (which would make a label per name sent). Shared by every socket (`this`).
 */
export function unknownEventHandler(context: HandlerContext): (this: ChatSocket, event: unknown, ...args: unknown[]) => void {
  const { metrics, slots } = context;
  const received = metrics.eventsReceived.labels({ event: 'unknown' });
  const refused = metrics.errors.labels({ event: 'unknown', code: 'INVALID_REQUEST' });
  return function onAnyEvent(this: ChatSocket, event: unknown, ...args: unknown[]) {
    if (CLIENT_EVENT_NAMES.has(event)) return;
    const socket = this;
    const last = args[args.length - 1];
    const ack = typeof last === 'function' ? (last as AnyAck) : undefined;
    received.inc();
    const refusal = () => Promise.reject(new AppError('INVALID_REQUEST'));
    const run = isTokenExpired(socket) ? refuseExpired : () => failing(socket.data.user.id, context.failures, refusal);
    slots.run(socket, run).catch((error: unknown) => {
      const appError = toAppError(error);
      if (appError.code === 'INVALID_REQUEST') refused.inc();
      else metrics.errors.inc({ event: 'unknown', code: appError.code });
      sendError(socket, String(event), appError.code, ack, appError.details);
    });
  };
}

/** An event sent once the socket's token has expired, while its earlier events are answered (token-expiry.ts). */
const refuseExpired = (): Promise<never> => Promise.reject(new AppError('TOKEN_EXPIRED'));

/**
 * Runs the handler inside the user's budget of failed events: refused at once while it is
 * spent, and a failure is charged before the event is answered (and before its slot frees),
 * so the client's next event already finds the budget as it is.
 */
async function failing<T>(userId: string, failures: FailedEventBudget | undefined, handle: () => Promise<T>): Promise<T> {
  if (!failures) return handle();
  const refused = failures.refusal(userId);
  if (refused) throw refused;
  try {
    return await handle();
  } catch (error) {
    if (error instanceof AppError) await failures.charge(userId, error.code);
    throw error;
  }
}

export function sendError(
  socket: ChatSocket,
  /** The client event that failed: one of the protocol's, or the name of one it does not name. */
  event: string,
  code: ErrorCode,
  ack: AnyAck | undefined,
  details?: Readonly<Record<string, unknown>>,
): void {
  const message = ERRORS[code].message;
  const retryAfterMs = typeof details?.retryAfterMs === 'number' ? details.retryAfterMs : undefined;
  const extra = retryAfterMs === undefined ? {} : { retryAfterMs };
  socket.emit('error', { message, code, event, ...extra });
  safeAck(ack, { ok: false, error: { message, code, ...extra } });
}
