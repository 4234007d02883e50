import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorBodySchema } from '@chat/protocol';
import type { MessageService } from '../services/message.service.ts';
import type { RequestAuth } from './authenticate.ts';

export function messagesRoutes(deps: { messageService: MessageService; auth: RequestAuth }): FastifyPluginAsyncZod {
  return async (app) => {
    app.delete(
      '/api/messages/:messageId',
      {
        preParsing: deps.auth.requireUser,
        schema: {
          tags: ['messages'],
          security: [{ bearer: [] }],
          params: z.object({ messageId: z.string() }),
          response: {
            200: z.object({ success: z.literal(true) }),
            401: errorBodySchema,
            403: errorBodySchema,
            404: errorBodySchema,
          },
        },
      },
      async (request) => {
        return deps.messageService.deleteOwn(deps.auth.userOf(request).id, request.params.messageId);
      },
    );
  };
}
