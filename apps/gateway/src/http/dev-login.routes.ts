import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { signToken } from '@chat/auth';
import { devLoginBodySchema, devLoginResponseSchema, errorBodySchema } from '@chat/protocol';

const DEV_TOKEN_SECONDS = 24 * 3600;

/** A development login (PROTOCOL §9): registered only when AUTH_DEV_LOGIN is on. */
export function devLoginRoutes(jwt: { secret: string; issuer?: string; audience?: string }): FastifyPluginAsyncZod {
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
          expiresInSeconds: DEV_TOKEN_SECONDS,
          ...(jwt.issuer ? { issuer: jwt.issuer } : {}),
          ...(jwt.audience ? { audience: jwt.audience } : {}),
        });
        return { accessToken: token, userId, expiresAt: new Date(expiresAt * 1000).toISOString() };
      },
    );
  };
}
