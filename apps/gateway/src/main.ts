import { exitOnSignalsWhileStarting, loadConfigOrExit, stopOnSignals } from '@chat/runtime';
import { buildGateway } from './app.ts';
import { loadConfig } from './config.ts';

const config = loadConfigOrExit('gateway', () => loadConfig(process.env));
const started = exitOnSignalsWhileStarting('gateway');
const gateway = await buildGateway(config);
const { logger } = gateway;
started();

stopOnSignals({
  logger,
  timeoutMs: config.shutdownTimeoutMs,
  async stop(signal) {
    // Ctrl-C in development skips the drain window; SIGTERM (Kubernetes) drains.
    await gateway.drain(signal === 'SIGINT' ? 0 : config.drainWindowMs);
    await gateway.close();
  },
});

await gateway.http.listen({ port: config.port, host: config.host });
logger.info({ port: config.port }, 'gateway listening');
