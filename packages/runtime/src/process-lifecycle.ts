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
 * SIGTERM or SIGINT while the app is still starting (connecting to Postgres and Redis, up to
 * seconds when one is away) ends the process at once: nothing is served yet, so nothing needs
 * draining. Without a handler a signal would not wait either, except where Node runs as PID 1
 * (a container without an init, as Kubernetes starts it), which ignores signals it has no
 * handler for: a pod stopped while starting ran on until its grace period's SIGKILL. Call the
 * returned function right before `stopOnSignals` takes over.
 */
export function exitOnSignalsWhileStarting(app: string): () => void {
  const exit = (signal: NodeJS.Signals) => {
    console.error(`${app}: ${signal} while starting; exiting`);
    process.exit(0);
  };
  process.once('SIGTERM', exit);
  process.once('SIGINT', exit);
  return () => {
    process.off('SIGTERM', exit);
    process.off('SIGINT', exit);
  };
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
