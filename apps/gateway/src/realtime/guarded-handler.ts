import { AppError, ERRORS, type AckResponse, type ClientEventName, type ErrorCode } from '@chat/protocol';
import { isDatabaseUnavailable, toAppError } from '../errors/error-classification.ts';
import type { GatewayMetrics } from '../metrics.ts';
import type { Logger } from 'pino';
import type { EventSlots } from './event-slots.ts';
import type { FailedEventBudget } from './failed-event-budget.ts';
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
  /** The socket's event slots: how many of its events run at once. */
  slots: EventSlots;
  /** The user's budget of failed events (failed-event-budget.ts); absent: failures are free. */
  failures?: FailedEventBudget;
}

type EventMetrics = {
  received: ReturnType<GatewayMetrics['eventsReceived']['labels']>;
  ackDuration: ReturnType<GatewayMetrics['ackDuration']['labels']>;
};
const boundMetrics = new WeakMap<GatewayMetrics, Map<ClientEventName, EventMetrics>>();

/**
 * Each event's counters, bound to their label once per pod: prom-client hashes a label set on
 * every unbound call, and binding per socket cost every idle connection a few hundred bytes
 * per event (a labels object and bound functions each).
 */
function eventMetrics(metrics: GatewayMetrics, event: ClientEventName): EventMetrics {
  let byEvent = boundMetrics.get(metrics);
  if (!byEvent) boundMetrics.set(metrics, (byEvent = new Map()));
  let bound = byEvent.get(event);
  if (!bound) byEvent.set(event, (bound = { received: metrics.eventsReceived.labels({ event }), ackDuration: metrics.ackDuration.labels({ event }) }));
  return bound;
}

/**
 * Wraps one socket event: separates payload and ack whatever the client sent, runs the
 * handler, and answers success through the ack and failure through `error` + ack. Nothing a
 * client sends can turn into an unhandled rejection.
 */
export function guardedHandler<T>(
  socket: ChatSocket,
  event: ClientEventName,
  context: HandlerContext,
  handle: (payload: unknown) => Promise<T>,
): (...args: unknown[]) => void {
  const { logger, metrics } = context;
  const { received, ackDuration } = eventMetrics(metrics, event);
  return (...args: unknown[]) => {
    const last = args[args.length - 1];
    const ack = typeof last === 'function' ? (last as AnyAck) : undefined;
    const payload = ack && args.length === 1 ? undefined : args[0];
    received.inc();
    const stopTimer = ackDuration.startTimer();
    socket.data.inFlight = (socket.data.inFlight ?? 0) + 1;
    const userId = socket.data.user.id;
    context.slots.run(() => failing(userId, context.failures, () => handle(payload))).then(
      (data) => {
        socket.data.inFlight -= 1;
        safeAck(ack, { ok: true, data });
        stopTimer();
      },
      (error: unknown) => {
        socket.data.inFlight -= 1;
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
  event: ClientEventName,
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
