import type { FastifyPluginAsync } from 'fastify';

/** `/livez`: the process serves. `/readyz`: Postgres answers and the pod is not draining. */
export function healthRoutes(deps: { isReady(): Promise<boolean> }): FastifyPluginAsync {
  return async (app) => {
    app.get('/livez', { logLevel: 'warn' }, async () => ({ status: 'ok' }));
    app.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
      const ready = await deps.isReady().catch(() => false);
      return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable' });
    });
  };
}
