export { buildGateway, type Gateway } from './app.ts';
export { loadConfig, ConfigError, type GatewayConfig } from './config.ts';
