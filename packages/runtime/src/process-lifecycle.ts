import type { Logger } from 'pino';
import { ConfigError } from './config-error.ts';

/**
 * An app's configuration, or the process ends with exit code 1 and the problems on stderr
 * (`<app>: invalid configuration: …`), before anything has started.
 */
export function loadConfigOrExit<T>(app: string, load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`${app}: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
}

/**
 * SIGTERM and SIGINT run `stop` once, then exit 0; a stop that outlasts `timeoutMs` exits 1
 * instead (keep it under the orchestrator's grace period). Unhandled rejections are logged,
 * never fatal.
 */
export function stopOnSignals(options: {
  /** Before each shutdown log line (`worker ` → "worker stopped"); operators grep these lines. */
  logPrefix?: string;
  logger: Logger;
  timeoutMs: number;
  stop(signal: NodeJS.Signals): Promise<void>;
}): void {
  const { logger } = options;
  const prefix = options.logPrefix ?? '';
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
  let stopping = false;
  async function stop(signal: NodeJS.Signals) {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, `${prefix}shutting down`);
    const timer = setTimeout(() => {
      logger.error(`${prefix}shutdown took too long; exiting`);
      process.exit(1);
    }, options.timeoutMs);
    timer.unref();
    await options.stop(signal);
    logger.info(`${prefix}stopped`);
    process.exit(0);
  }
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
