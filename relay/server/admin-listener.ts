/**
 * The admin port, bound to loopback only (config validation refuses anything else): Prometheus
 * metrics and a health check for the appliance's own monitoring. It serves no plant data.
 */
import { fastify, type FastifyInstance } from 'fastify';
import type { Broker } from './broker.ts';
import type { RelayMetrics } from './metrics.ts';

export function createAdminListener(
  metrics: RelayMetrics,
  broker: Broker,
  startedAt: number,
): FastifyInstance {
  const app = fastify({ logger: false, bodyLimit: 1024 });
  app.get('/metrics', async (_request, reply) => {
    const body = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(body);
  });
  app.get('/healthz', () => ({
    status: 'ok',
    agents: broker.agentCount,
    sessions: broker.sessionCount,
    uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
  }));
  return app;
}
