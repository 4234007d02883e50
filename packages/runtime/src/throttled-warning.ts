/** What a throttled warning needs of a logger (pino's, Fastify's). */
interface WarningLogger {
  warn(fields: object, message: string): void;
}

/**
 * A warning said at most once every `intervalMs`, with how many times it happened since the last
 * one said (as `countField`), however often it happens: an outage is one story, not a line per
 * request or per handshake.
 */
export function throttledWarning(logger: WarningLogger, message: string, countField: string, intervalMs = 5000): (error: unknown) => void {
  let saidAt = 0;
  let unsaid = 0;
  return (error) => {
    unsaid += 1;
    const now = Date.now();
    if (now - saidAt < intervalMs) return;
    logger.warn({ err: error, [countField]: unsaid }, message);
    saidAt = now;
    unsaid = 0;
  };
}
