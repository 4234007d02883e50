import { buildGateway } from './app.ts';
import { ConfigError, loadConfig, type GatewayConfig } from './config.ts';

let config: Readonly<GatewayConfig>;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`gateway: ${error.message}`);
    process.exit(1);
  }
  throw error;
}

const gateway = await buildGateway(config);
const { logger } = gateway;

process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down');
  const timer = setTimeout(() => {
    logger.error('shutdown took too long; exiting');
    process.exit(1);
  }, config.shutdownTimeoutMs);
  timer.unref();
  // Ctrl-C in development skips the drain window; SIGTERM (Kubernetes) drains.
  await gateway.drain(signal === 'SIGINT' ? 0 : config.drainWindowMs);
  await gateway.close();
  logger.info('stopped');
  process.exit(0);
}
process.once('SIGTERM', () => void stop('SIGTERM'));
process.once('SIGINT', () => void stop('SIGINT'));

await gateway.http.listen({ port: config.port, host: config.host });
logger.info({ port: config.port }, 'gateway listening');
