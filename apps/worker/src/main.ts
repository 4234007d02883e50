import { loadWorkerConfig, WorkerConfigError, type WorkerConfig } from './config.ts';
import { startWorker } from './app.ts';

let config: Readonly<WorkerConfig>;
try {
  config = loadWorkerConfig(process.env);
} catch (error) {
  if (error instanceof WorkerConfigError) {
    console.error(`worker: ${error.message}`);
    process.exit(1);
  }
  throw error;
}

const worker = await startWorker(config);
process.on('unhandledRejection', (reason) => worker.logger.error({ err: reason }, 'unhandled rejection'));

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  worker.logger.info({ signal }, 'worker shutting down');
  const timer = setTimeout(() => {
    worker.logger.error('worker shutdown took too long; exiting');
    process.exit(1);
  }, config.shutdownTimeoutMs);
  timer.unref();
  await worker.close();
  worker.logger.info('worker stopped');
  process.exit(0);
}
process.once('SIGTERM', () => void stop('SIGTERM'));
process.once('SIGINT', () => void stop('SIGINT'));
