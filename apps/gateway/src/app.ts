import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Server } from 'socket.io';
import type { GatewayConfig } from './config.ts';
import { buildInfrastructure, buildServices, type GatewayOptions } from './deps.ts';
import { createHttpServer, registerHttp } from './http/register-http.ts';
import type { GatewayMetrics } from './metrics.ts';
import { createRealtime, registerRealtime } from './realtime/register-realtime.ts';
import type { ChatNamespace } from './realtime/types.ts';
import { createDrainState, createShutdown } from './shutdown.ts';

export interface Gateway {
  http: FastifyInstance;
  metrics: GatewayMetrics;
  /** SIGTERM, step one: readiness off, no new sockets, clients told and closed over the window. */
  drain(windowMs?: number): Promise<void>;
  io: Server;
  nsp: ChatNamespace;
  logger: Logger;
  /** Stops sockets, finishes in-flight writes, then closes HTTP, Redis and Postgres in order. */
  close(): Promise<void>;
}

/**
 * Builds a gateway pod: everything wired, nothing listening (main.ts and tests listen). The
 * composition root: what is built is in deps.ts, the routes in http/, the socket events in
 * realtime/, the order of shutdown in shutdown.ts.
 */
export async function buildGateway(config: Readonly<GatewayConfig>, options: GatewayOptions = {}): Promise<Gateway> {
  const infra = await buildInfrastructure(config, options);
  const { logger, metrics } = infra;
  const state = createDrainState();
  const http = createHttpServer(config, logger);
  const realtime = createRealtime({
    config,
    logger,
    metrics,
    httpServer: http.server,
    redis: infra.redis,
    presenceStore: infra.presenceStore,
    isDraining: state.isDraining,
  });
  const services = buildServices(config, infra, { events: realtime.events, isDraining: state.isDraining });
  await registerHttp(http, {
    config,
    services,
    verifyToken: infra.verifyToken,
    redis: infra.redis.commands,
    metricsRegistry: metrics.registry,
  });
  const slowConsumers = registerRealtime(realtime, { config, logger, metrics, services, tokenExpiryMaxStepMs: options.tokenExpiryMaxStepMs });
  const shutdown = createShutdown({
    state,
    http,
    realtime,
    slowConsumers,
    writer: infra.writer,
    sendLimiter: infra.sendLimiter,
    redis: infra.redis,
    database: infra.database,
    writerDatabase: infra.writerDatabase,
    logger,
    drainWindowMs: config.drainWindowMs,
  });

  return {
    http,
    io: realtime.io,
    nsp: realtime.nsp,
    logger,
    metrics,
    drain: shutdown.drain,
    close: shutdown.close,
  };
}
