export { buildGateway, type Gateway } from './app.ts';
export { createLogger } from './infrastructure/logger.ts';
export { ENV_VARIABLES, envDefaults, loadConfig, type GatewayConfig } from './config.ts';
export { ConfigError } from '@chat/runtime';
