import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

/**
 * OpenAPI generated from the routes' zod schemas (the same ones that validate requests), at
 * `/docs` (UI) and `/docs/json`. Registered before the routes so it sees all of them.
 */
export async function registerApiDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Chat cluster REST API',
        version: '1.0.0',
        description:
          'REST half of the chat protocol (docs/PROTOCOL.md §7–9, the change feed §16, the server API for trusted backends §17). The realtime half is Socket.IO on namespace /socket; see docs/events.md.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          // The server API (PROTOCOL §17): a key configured in SERVER_API_KEYS, never a user JWT.
          apiKey: { type: 'apiKey', in: 'header', name: 'X-Api-Key' },
        },
      },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
