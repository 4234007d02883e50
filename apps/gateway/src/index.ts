export { buildGateway, type Gateway } from './app.ts';
export { loadConfig, type GatewayConfig } from './config.ts';
export { ConfigError } from '@chat/runtime';
