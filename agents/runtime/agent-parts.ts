/**
 * The durable parts of an agent, by role, opened before anything runs: the OT side's log,
 * sources, publisher and replay server; the IT side's sinks and one consumer per configured
 * stream. agent.ts runs them; a part that cannot open closes what it opened first.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Consumer } from '../it/consumer.ts';
import { openJsonLinesSink } from '../it/sinks/jsonl-sink.ts';
import type { Sink } from '../it/sinks/sink.ts';
import { openStreamLog, type StreamLog } from '../ot/log/stream-log.ts';
import { PointPublisher } from '../ot/publisher.ts';
import { ReplayServer } from '../ot/replay.ts';
import { createSource } from '../ot/sources/registry.ts';
import { sourceStateDir, type PointSource } from '../ot/sources/source.ts';
import type { AgentConfig } from './config.ts';

export interface OtPart {
  readonly settings: NonNullable<AgentConfig['ot']>;
  readonly log: StreamLog;
  readonly publisher: PointPublisher;
  readonly replay: ReplayServer;
  readonly sources: readonly PointSource[];
  readonly sessions: Set<number>;
}

export interface ItPart {
  readonly consumers: readonly {
    readonly consumer: Consumer;
    readonly sink: Sink;
    readonly settings: ConsumeSettings;
  }[];
  readonly sinks: readonly Sink[];
}

export type ConsumeSettings = NonNullable<AgentConfig['it']>['consume'][number];

export async function openOt(
  settings: NonNullable<AgentConfig['ot']>,
  state: string,
  name: string,
  logger: Logger,
): Promise<OtPart> {
  const log = await openStreamLog({
    dir: join(state, 'log'),
    maxBytes: settings.log.maxBytes,
    maxAgeMs: settings.log.maxAgeMs,
    segmentBytes: settings.log.segmentBytes,
  });
  try {
    const sources = settings.sources.map((source, index) =>
      createSource(source, {
        agentName: name,
        configPath: `/ot/sources/${index}`,
        logged: (topic) => log.lastSeq(topic),
        stateDir: sourceStateDir(state, source.name),
      }),
    );
    const publisher = new PointPublisher(log, name, (error) =>
      logger.warn({ err: error }, 'skipped live points not read back; consumers replay them'),
    );
    const replay = new ReplayServer(log, name, (error, request) =>
      logger.warn({ err: error, session: request.session, filter: request.filter }, 'replay round failed'),
    );
    return { settings, log, publisher, replay, sources, sessions: new Set() };
  } catch (error) {
    await log.close();
    throw error;
  }
}

export async function openIt(
  config: AgentConfig,
  logger: Logger,
  onStorageFailure: (error: unknown) => void,
): Promise<ItPart> {
  const settings = config.it;
  if (settings === undefined) return { consumers: [], sinks: [] };
  const sinks = new Map<string, Sink>();
  try {
    for (const sink of settings.sinks) {
      sinks.set(sink.name, await openJsonLinesSink({ dir: sink.dir, name: sink.name }));
    }
  } catch (error) {
    await Promise.all([...sinks.values()].map((sink) => sink.close()));
    throw error;
  }
  const consumers = settings.consume.map((consume) => {
    // config.ts checked that every consumer names a configured sink.
    const sink = sinks.get(consume.sink) as Sink;
    const consumer = new Consumer({
      name: consume.name,
      peer: consume.from,
      filter: consume.filter,
      sink,
      window: consume.replayWindow,
      backoff: { baseMs: config.relay.reconnectBaseMs, capMs: config.relay.reconnectCapMs },
      logger: logger.child({ consumer: consume.name }),
      onStorageFailure,
    });
    return { consumer, sink, settings: consume };
  });
  return { consumers, sinks: [...sinks.values()] };
}
