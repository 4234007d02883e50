import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  changesQuerySchema,
  changesResponseSchema,
  CLIENT_MESSAGE_ID_MAX_LENGTH,
  errorBodySchema,
  SERVER_BATCH_MAX_BODY_BYTES,
  serverBatchBodySchema,
  serverBatchResponseSchema,
  serverExtendBodySchema,
  serverPublishBodySchema,
  serverPublishResponseSchema,
  serverRoomLifetimeSchema,
} from '@chat/protocol';
import type { ChangeFeedService } from '../services/change-feed.service.ts';
import type { ServerApiService } from '../services/server-api.service.ts';
import type { ServerApiAuth } from './server-api-auth.ts';

const roomParams = z.object({ roomId: z.string() });

const errors = { 400: errorBodySchema, 401: errorBodySchema, 404: errorBodySchema, 410: errorBodySchema, 429: errorBodySchema, 503: errorBodySchema };
const idempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    // The service checks its characters too (clientMessageId's rules); the length shows in /docs.
    .min(1, { error: 'INVALID_CLIENT_MESSAGE_ID' })
    .max(CLIENT_MESSAGE_ID_MAX_LENGTH, { error: 'INVALID_CLIENT_MESSAGE_ID' })
    .optional()
    .describe('Scoped to the API key: a retry with the same key stores the message once; the same key for a different request answers 422 IDEMPOTENCY_KEY_REUSED.'),
});

/**
 * The server API for trusted backends (PROTOCOL §17), under `/api/server/`: `X-Api-Key`
 * authentication and its own rate limit per key (server-api-auth.ts), every call logged with
 * the key's id.
 */
export function serverApiRoutes(deps: {
  serverApi: ServerApiService;
  changeFeed: ChangeFeedService;
  auth: ServerApiAuth;
}): FastifyPluginAsyncZod {
  const { serverApi, changeFeed, auth } = deps;
  return async (app) => {
    app.addHook('preParsing', auth.requireKey);
    app.addHook('onResponse', auth.logCall);
    const common = { tags: ['server api'], security: [{ apiKey: [] }] };

    app.post(
      '/api/server/rooms/:roomId/messages',
      {
        schema: {
          ...common,
          description:
            'Publishes a message into the room as a bot or system sender: stored and acknowledged after COMMIT, then broadcast as `new-message` with `sender`. 201 when stored, 200 when an earlier call with the same Idempotency-Key stored it.',
          params: roomParams,
          headers: idempotencyHeaders,
          body: serverPublishBodySchema,
          response: { 200: serverPublishResponseSchema, 201: serverPublishResponseSchema, 422: errorBodySchema, ...errors },
        },
      },
      async (request, reply) => {
        const result = await serverApi.publish({
          apiKeyId: auth.keyIdOf(request),
          roomId: request.params.roomId,
          ...request.body,
          idempotencyKey: request.headers['idempotency-key'] ?? null,
        });
        return reply.status(result.created ? 201 : 200).send(result);
      },
    );

    app.post(
      '/api/server/messages/batch',
      {
        // 100 items of up to 1000 characters each do not fit the server's 64 KiB (PROTOCOL §17).
        bodyLimit: SERVER_BATCH_MAX_BODY_BYTES,
        schema: {
          ...common,
          description:
            'Up to 100 messages in one group commit (one transaction). Each item is answered on its own, in order. An item without `idempotencyKey` takes `<Idempotency-Key header>:<index>` when the header is sent; a header that is not 1–64 characters refuses the whole request (400 INVALID_CLIENT_MESSAGE_ID). The body may be up to 1,600 KiB (16 KiB per item).',
          headers: idempotencyHeaders,
          body: serverBatchBodySchema,
          response: { 200: serverBatchResponseSchema, ...errors },
        },
      },
      async (request) => serverApi.publishBatch(auth.keyIdOf(request), request.headers['idempotency-key'] ?? null, request.body.items),
    );

    app.get(
      '/api/server/rooms/:roomId/changes',
      {
        schema: {
          ...common,
          description:
            'The room\'s change feed after `after` (a changeSeq, default 0), oldest first, as the public route serves it to the room\'s members: `user-joined` and `user-left` name who joined and left, which the public route hides from non-members. For refilling webhook gaps. Follow `hasMore`.',
          params: roomParams,
          querystring: changesQuerySchema,
          response: { 200: changesResponseSchema, ...errors },
        },
      },
      async (request) => changeFeed.changes(request.params.roomId, request.query),
    );

    app.post(
      '/api/server/users/:userId/disconnect',
      {
        schema: {
          ...common,
          description: "Disconnects every socket of the user, on every pod. The user's token stays valid.",
          params: z.object({ userId: z.string() }),
          response: { 200: z.object({ success: z.literal(true) }), ...errors },
        },
      },
      async (request) => serverApi.disconnectUser(request.params.userId),
    );

    app.delete(
      '/api/server/rooms/:roomId/members/:userId',
      {
        schema: {
          ...common,
          description: "Removes the user from the room: the room hears `user-left`, the user's devices `room-left`.",
          params: z.object({ roomId: z.string(), userId: z.string() }),
          response: { 200: z.object({ success: z.literal(true), changeSeq: z.number().nullable() }), 403: errorBodySchema, ...errors },
        },
      },
      async (request) => serverApi.removeMember(request.params.roomId, request.params.userId),
    );

    app.post(
      '/api/server/rooms/:roomId/close',
      {
        schema: {
          ...common,
          description:
            'Expires the room now: the room hears `room-lifetime-changed` with the new `expiresAt` (a change of its feed). The worker\'s sweep then announces `room-expired` and empties it, as for any room that expires.',
          params: roomParams,
          response: { 200: serverRoomLifetimeSchema, ...errors },
        },
      },
      async (request) => serverApi.closeRoom(request.params.roomId),
    );

    app.post(
      '/api/server/rooms/:roomId/extend',
      {
        schema: {
          ...common,
          description:
            'The room now expires `ttlSeconds` (1–86400) from now, and hears `room-lifetime-changed` with the new `expiresAt` (a change of its feed). An expired room cannot be brought back (410).',
          params: roomParams,
          body: serverExtendBodySchema,
          response: { 200: serverRoomLifetimeSchema, ...errors },
        },
      },
      async (request) => serverApi.extendRoom(request.params.roomId, request.body.ttlSeconds),
    );
  };
}
