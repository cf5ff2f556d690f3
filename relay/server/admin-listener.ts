/**
 * The admin port, bound to loopback only (config validation refuses anything else): Prometheus
 * metrics and a health check for the appliance's own monitoring. It serves no plant data.
 */
import { fastify, type FastifyInstance } from 'fastify';
import type { Broker } from './broker.ts';
import type { EnrollmentPortStatus } from './enrollment-switch.ts';
import type { RelayMetrics } from './metrics.ts';

/**
 * `/healthz` says `degraded` (still HTTP 200: agents are served) when a part the operator asked
 * for is not working, such as an enrollment port that cannot open; `problems` says which and why.
 */
export function createAdminListener(
  metrics: RelayMetrics,
  broker: Broker,
  startedAt: number,
  enrollment: () => EnrollmentPortStatus = () => ({ mode: 'off', state: 'off' }),
): FastifyInstance {
  const app = fastify({ logger: false, bodyLimit: 1024 });
  app.get('/metrics', async (_request, reply) => {
    const body = await metrics.text();
    return reply.type(metrics.contentType).send(body);
  });
  app.get('/healthz', () => {
    const port = enrollment();
    const problems = port.problem === undefined ? [] : [`enrollment: ${port.problem}`];
    return {
      status: problems.length === 0 ? 'ok' : 'degraded',
      agents: broker.agentCount,
      sessions: broker.sessionCount,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      enrollment: port,
      ...(problems.length === 0 ? {} : { problems }),
    };
  });
  return app;
}
