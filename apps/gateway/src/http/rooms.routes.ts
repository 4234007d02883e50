import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  changesQuerySchema,
  changesResponseSchema,
  createRoomBodySchema,
  createdRoomSchema,
  errorBodySchema,
  historyQuerySchema,
  historyResponseSchema,
  memberListQuerySchema,
  roomListQuerySchema,
  roomListSchema,
  roomMembersSchema,
  roomSchema,
  ROOM_LIST_DEFAULT_LIMIT,
} from '@chat/protocol';
import type { ChangeFeedService } from '../services/change-feed.service.ts';
import type { MessageService } from '../services/message.service.ts';
import type { RoomService } from '../services/room.service.ts';
import type { RequestAuth } from './authenticate.ts';

const roomParams = z.object({ roomId: z.string() });

export function roomsRoutes(deps: {
  roomService: RoomService;
  messageService: MessageService;
  changeFeed: ChangeFeedService;
  auth: RequestAuth;
}): FastifyPluginAsyncZod {
  const { roomService, messageService, changeFeed, auth } = deps;
  return async (app) => {
    app.post(
      '/api/rooms',
      {
        preParsing: auth.requireUser,
        schema: {
          tags: ['rooms'],
          security: [{ bearer: [] }],
          body: createRoomBodySchema,
          response: { 201: createdRoomSchema, 400: errorBodySchema, 401: errorBodySchema, 429: errorBodySchema },
        },
      },
      async (request, reply) => {
        return reply.status(201).send(await roomService.create(auth.userOf(request), request.body));
      },
    );

    app.get(
      '/api/rooms',
      { schema: { tags: ['rooms'], querystring: roomListQuerySchema, response: { 200: roomListSchema } } },
      async (request) =>
        roomService.listActive(request.query.limit ?? ROOM_LIST_DEFAULT_LIMIT, request.query.before),
    );

    app.get(
      '/api/rooms/:roomId',
      { schema: { tags: ['rooms'], params: roomParams, response: { 200: roomSchema, 404: errorBodySchema } } },
      async (request) => roomService.get(request.params.roomId),
    );

    app.get(
      '/api/rooms/:roomId/members',
      {
        // [ext] For the room's members only (docs/PROTOCOL.md §9).
        preParsing: auth.requireUser,
        schema: {
          tags: ['rooms'],
          security: [{ bearer: [] }],
          params: roomParams,
          querystring: memberListQuerySchema,
          response: {
            200: roomMembersSchema,
            400: errorBodySchema,
            401: errorBodySchema,
            403: errorBodySchema,
            404: errorBodySchema,
          },
        },
      },
      async (request) => roomService.members(auth.userOf(request), request.params.roomId, request.query),
    );

    app.get(
      '/api/rooms/:roomId/messages',
      {
        // Guests may read; a token that is present must be valid.
        preParsing: auth.optionalUser,
        // The busiest read: its page is built field by field from typed rows (the type provider
        // checks it against the schema at compile time), so it is not parsed again by zod on
        // the way out; that re-parse doubled what each page allocates, and the garbage
        // collector's pauses were this route's p99.
        serializerCompiler: () => (data) => JSON.stringify(data),
        schema: {
          tags: ['messages'],
          params: roomParams,
          querystring: historyQuerySchema,
          response: {
            200: historyResponseSchema,
            400: errorBodySchema,
            401: errorBodySchema,
            404: errorBodySchema,
            410: errorBodySchema,
          },
        },
      },
      async (request) => messageService.history(request.params.roomId, request.query),
    );

    app.get(
      '/api/rooms/:roomId/changes',
      {
        // [ext] PROTOCOL §16. Same access as history: guests may read; who joined and left
        // only for the room's members (§9), so the caller is known when a token is sent.
        preParsing: auth.optionalUser,
        schema: {
          tags: ['rooms'],
          description:
            'The room\'s change feed after `after` (a changeSeq, default 0), oldest first: every stored message, delete, membership change and expiry notice, each as the live event it was announced with. Follow `hasMore`. For a caller who is not a member of the room (a guest included), `user-joined` and `user-left` carry no `userId` or `nicknameMask`; trusted backends read the whole feed at `/api/server/rooms/{roomId}/changes`.',
          params: roomParams,
          querystring: changesQuerySchema,
          response: {
            200: changesResponseSchema,
            400: errorBodySchema,
            401: errorBodySchema,
            404: errorBodySchema,
            410: errorBodySchema,
          },
        },
      },
      async (request) => changeFeed.changesFor(auth.userOrGuestOf(request), request.params.roomId, request.query),
    );
  };
}
