import { exitOnSignalsWhileStarting, loadConfigOrExit, stopOnSignals } from '@chat/runtime';
import { startWorker } from './app.ts';
import { loadWorkerConfig } from './config.ts';

const config = loadConfigOrExit('worker', () => loadWorkerConfig(process.env));
const started = exitOnSignalsWhileStarting('worker');
const worker = await startWorker(config);
started();

stopOnSignals({
  logPrefix: 'worker ',
  logger: worker.logger,
  timeoutMs: config.shutdownTimeoutMs,
  stop: () => worker.close(),
});
