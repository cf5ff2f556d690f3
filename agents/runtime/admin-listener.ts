/**
 * The agent's optional admin port, on loopback only (config.ts refuses anything else): Prometheus
 * `/metrics` and `/healthz` for the host's own monitoring. It serves no plant data, and is off
 * unless configured, so an OT host opens no port at all by default.
 */
import { fastify, type FastifyInstance } from 'fastify';
import { DmzError } from '../../relay/protocol/errors.ts';
import { AgentMetrics } from './agent-metrics.ts';
import type { AgentStatus } from './status.ts';

export async function startAdminListener(
  host: string,
  port: number,
  snapshot: () => AgentStatus,
): Promise<{ readonly port: number; close(): Promise<void> }> {
  const metrics = new AgentMetrics(snapshot);
  const app: FastifyInstance = fastify({ logger: false, bodyLimit: 1024 });
  app.get('/metrics', async (_request, reply) => reply.type(metrics.contentType).send(await metrics.text()));
  // 503 while the relay is unreachable: a monitoring check alerts on the status code alone.
  app.get('/healthz', (_request, reply) => {
    const status = snapshot();
    return reply.code(status.relay.connected ? 200 : 503).send({
      status: status.relay.connected ? 'ok' : 'disconnected',
      name: status.name,
      role: status.role,
      relay: status.relay,
    });
  });
  try {
    await app.listen({ host, port });
  } catch (cause) {
    const reason =
      (cause as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'the port is in use' : String(cause);
    throw new DmzError(
      'AGENT_ERR_LISTEN',
      `the admin listener cannot listen on ${host}:${port} (admin): ${reason}`,
      {
        cause,
        hint: `stop what holds it (ss -ltnp 'sport = :${port}') or choose another admin.port`,
      },
    );
  }
  const address = app.server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : port,
    close: () => app.close(),
  };
}
