import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { signToken } from '@chat/auth';
import { devLoginBodySchema, devLoginResponseSchema, errorBodySchema } from '@chat/protocol';

const DEV_TOKEN_SECONDS = 24 * 3600;

/** A development login (PROTOCOL §9): registered only when AUTH_DEV_LOGIN is on. */
export function devLoginRoutes(jwt: {
  secret: string;
  issuer?: string;
  audience?: string;
  maxLifetimeSeconds?: number;
}): FastifyPluginAsyncZod {
  // Never longer than the verifier accepts (JWT_MAX_LIFETIME_SECONDS): a longer token would be
  // refused by every route and the handshake as INVALID_TOKEN.
  const lifetimeSeconds = Math.min(DEV_TOKEN_SECONDS, jwt.maxLifetimeSeconds ?? DEV_TOKEN_SECONDS);
  return async (app) => {
    app.post(
      '/api/auth/token',
      {
        schema: {
          tags: ['auth'],
          body: devLoginBodySchema,
          response: { 200: devLoginResponseSchema, 400: errorBodySchema },
        },
      },
      async (request) => {
        const userId = randomUUID();
        const { token, expiresAt } = await signToken({
          secret: jwt.secret,
          userId,
          nickname: request.body.nickname,
          expiresInSeconds: lifetimeSeconds,
          ...(jwt.issuer ? { issuer: jwt.issuer } : {}),
          ...(jwt.audience ? { audience: jwt.audience } : {}),
        });
        return { accessToken: token, userId, expiresAt: new Date(expiresAt * 1000).toISOString() };
      },
    );
  };
}
