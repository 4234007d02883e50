import type { Logger } from 'pino';

/** How often one client's errors are logged at most: an outage is one story, not a flood. */
const ERROR_LOG_INTERVAL_MS = 5000;

/**
 * Logs a Redis client's errors (`redis client error`, with `client: name`) at most once every
 * few seconds; `onError` still hears every one (a metric counts them).
 */
export function logErrorsThrottled(
  client: { on(event: 'error', listener: (error: Error) => void): unknown },
  name: string,
  logger: Logger,
  onError?: (client: string) => void,
): void {
  let lastLogged = 0;
  client.on('error', (error: Error) => {
    onError?.(name);
    const now = Date.now();
    if (now - lastLogged < ERROR_LOG_INTERVAL_MS) return;
    lastLogged = now;
    logger.warn({ err: error, client: name }, 'redis client error');
  });
}

/**
 * The client's PUBLISH, for callers that fire it and drop the promise (the Socket.IO adapter
 * and emitter): a publish Redis never takes (an outage) resolves 0 and goes to `onFailure`
 * instead of becoming an unhandled rejection. Binds the client's method as it is now, so the
 * result may replace it.
 */
export function publishWithoutRejection(
  client: { publish(channel: string | Buffer, message: string | Buffer): Promise<number> },
  onFailure: (error: unknown) => void,
): (channel: string | Buffer, message: string | Buffer) => Promise<number> {
  const publish = client.publish.bind(client);
  return (channel, message) =>
    publish(channel, message).catch((error: unknown) => {
      onFailure(error);
      return 0;
    });
}
