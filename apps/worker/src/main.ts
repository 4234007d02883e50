import { loadConfigOrExit, stopOnSignals } from '@chat/runtime';
import { startWorker } from './app.ts';
import { loadWorkerConfig } from './config.ts';

const config = loadConfigOrExit('worker', () => loadWorkerConfig(process.env));
const worker = await startWorker(config);

stopOnSignals({
  logPrefix: 'worker ',
  logger: worker.logger,
  timeoutMs: config.shutdownTimeoutMs,
  stop: () => worker.close(),
});
