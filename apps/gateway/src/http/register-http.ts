import { maxHeaderSize } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyServerOptions } from 'fastify';
import {
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { StateClient } from '@chat/bus';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { TokenVerifier } from '@chat/auth';
import type { GatewayConfig } from '../config.ts';
import type { Services } from '../deps.ts';
import { createRequestAuth } from './authenticate.ts';
import { registerBodyParsers } from './body-parsers.ts';
import { registerCors } from './cors.ts';
import { devLoginRoutes } from './dev-login.routes.ts';
import { registerApiDocs } from './docs.routes.ts';
import { createPathErrors, registerErrorHandling } from './error-handler.ts';
import { healthRoutes } from './health.routes.ts';
import { messagesRoutes } from './messages.routes.ts';
import { metricsRoutes } from './metrics.routes.ts';
import { registerHttpRateLimit } from './rate-limit.ts';
import { createRequestTokens } from './request-token.ts';
import { roomsRoutes } from './rooms.routes.ts';
import { webRoutes } from './web.routes.ts';
import { serverApiRoutes } from './server-api.routes.ts';
import { createServerApiAuth } from './server-api-auth.ts';
import { createUserRateLimiter } from '../infrastructure/user-rate-limiter.ts';

/** The Fastify instance, with its validation and its one error shape; no routes yet. */
export function createHttpServer(config: Readonly<GatewayConfig>, logger: Logger) {
  // No id is refused by the router for its length (Fastify's default stops at 100 characters
  // with its own 414): one as long as a request line can be reaches its route, which answers
  // it as any id that is not a UUID, after authentication and the rate limit (PROTOCOL §7, §8).
  const maxParamLength = maxHeaderSize;
  // What the router still refuses (a path that is not valid percent-encoding) is answered from
  // the catalog, by the shape of the route it names (error-handler.ts).
  const pathErrors = createPathErrors(maxParamLength);
  const http = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    requestIdHeader: 'x-request-id',
    bodyLimit: 64 * 1024,
    routerOptions: { maxParamLength },
    frameworkErrors: pathErrors.frameworkErrors,
    trustProxy: (Array.isArray(config.trustProxy) ? [...config.trustProxy] : config.trustProxy) as FastifyServerOptions['trustProxy'],
  }).withTypeProvider<ZodTypeProvider>();
  http.setValidatorCompiler(validatorCompiler);
  http.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(http, pathErrors);
  registerBodyParsers(http);
  return http;
}

export type HttpServer = ReturnType<typeof createHttpServer>;

/** Every route of the gateway, behind the rate limit; a new route file is registered here. */
export async function registerHttp(
  http: HttpServer,
  deps: {
    config: Readonly<GatewayConfig>;
    services: Services;
    verifyToken: TokenVerifier;
    /** Where the rate limit counts. */
    redis: StateClient;
    metricsRegistry: Registry;
  },
): Promise<void> {
  const { config, services } = deps;
  // One verification per request, shared by the rate limiter and the routes' authentication.
  const requestTokens = createRequestTokens(deps.verifyToken);
  // Before any route: the limit attaches itself to the routes registered after it.
  await registerHttpRateLimit(http, {
    tokens: requestTokens,
    redis: deps.redis,
    keyPrefix: config.redisPrefix,
    perMinute: config.httpRateLimitPerMinute,
  });
  await registerApiDocs(http);
  await registerCors(http, config.corsOrigins);

  const auth = createRequestAuth(services.userAuth, requestTokens);
  await http.register(healthRoutes(services.health));
  await http.register(metricsRoutes(deps.metricsRegistry));
  await http.register(roomsRoutes({ roomService: services.roomService, messageService: services.messageService, changeFeed: services.changeFeed, auth }));
  await http.register(messagesRoutes({ messageService: services.messageService, auth }));
  await http.register(
    serverApiRoutes({
      serverApi: services.serverApi,
      changeFeed: services.changeFeed,
      auth: createServerApiAuth({
        keys: config.serverApi.keys,
        revokedKeyIds: config.serverApi.revokedKeyIds,
        limiter: createUserRateLimiter({
          redis: deps.redis,
          keyPrefix: `${config.redisPrefix}:rl:server-api`,
          perMinute: config.serverApi.rateLimitPerMinute,
          refusal: 'TOO_MANY_REQUESTS',
        }),
        // Refused calls spend a budget of their client address, as large as a guest's.
        refusalLimiter:
          config.httpRateLimitPerMinute > 0
            ? createUserRateLimiter({
                redis: deps.redis,
                keyPrefix: `${config.redisPrefix}:rl:server-api-refused`,
                perMinute: config.httpRateLimitPerMinute,
                refusal: 'TOO_MANY_REQUESTS',
              })
            : null,
      }),
    }),
  );
  await http.register(webRoutes());
  if (config.devLogin && config.jwt.secret) {
    await http.register(devLoginRoutes({ ...config.jwt, secret: config.jwt.secret }));
  }
}
