/**
 * The durable parts of an agent, by role, opened before anything runs: the OT side's log,
 * sources, publisher and replay server; the IT side's sinks and one consumer per configured
 * stream. agent.ts runs them; a part that cannot open closes what it opened first.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Consumer } from '../it/consumer.ts';
import { consumersBeyondLimits } from '../it/session-limits.ts';
import { openJsonLinesSink } from '../it/sinks/jsonl-sink.ts';
import { sinkStateDir } from '../it/sinks/mqtt/cursor-file.ts';
import { openMqttSink } from '../it/sinks/mqtt-sink.ts';
import { openRecentSink } from '../it/sinks/recent-sink.ts';
import type { Sink } from '../it/sinks/sink.ts';
import { openStreamLog, type StreamLog } from '../ot/log/stream-log.ts';
import { PointPublisher } from '../ot/publisher.ts';
import { ReplayServer } from '../ot/replay.ts';
import { createSource } from '../ot/sources/registry.ts';
import { sourceStateDir, type PointSource } from '../ot/sources/source.ts';
import { WriteService } from '../ot/writes/write-service.ts';
import { TunnelEntrance } from '../tunnels/entrance.ts';
import { TunnelExit } from '../tunnels/exit.ts';
import type { RelayLink } from '../link/relay-link.ts';
import type { AgentConfig } from './config.ts';

export interface OtPart {
  readonly settings: NonNullable<AgentConfig['ot']>;
  readonly log: StreamLog;
  readonly publisher: PointPublisher;
  readonly replay: ReplayServer;
  readonly sources: readonly PointSource[];
  /** The sessions this agent accepted, each with its IT peer (as the relay named it). */
  readonly sessions: Map<number, string>;
  /** Answers write commands (agents/ot/writes/). */
  readonly writes: WriteService;
  /** Serves tunnel streams to the configured services (agents/tunnels/). */
  readonly tunnels: TunnelExit;
}

export interface ItPart {
  readonly consumers: readonly {
    readonly consumer: Consumer;
    readonly sink: Sink;
    readonly settings: ConsumeSettings;
  }[];
  readonly sinks: readonly Sink[];
  /** Tunnel entrances, listening from start to stop (agents/tunnels/). */
  readonly tunnels: TunnelEntrance;
}

export type ConsumeSettings = NonNullable<AgentConfig['it']>['consume'][number];

/**
 * A link is up: each consumer opens its session, except those the session limits the relay
 * announced leave out, which say so (agents/it/session-limits.ts) instead of asking in vain.
 * `entrances` are the tunnel entrances, each to a service of an OT agent (`peer`).
 */
export function attachConsumers(
  it: ItPart,
  link: RelayLink,
  entrances: readonly { readonly peer: string }[],
): void {
  const beyond = consumersBeyondLimits(
    it.consumers.map(({ consumer, settings }) => ({ name: consumer.name, peer: settings.from })),
    link.welcome.limits,
    new Set(entrances.map((entrance) => entrance.peer)),
  );
  for (const { consumer } of it.consumers) {
    const error = beyond.get(consumer.name);
    if (error === undefined) consumer.attach(link);
    else consumer.leaveOut(error);
  }
}

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
    const writes = await WriteService.open({
      agentName: name,
      state,
      settings: settings.writes,
      sources,
      logger: logger.child({ part: 'writes' }),
    });
    const sessions = new Map<number, string>();
    const tunnels = new TunnelExit({
      services: settings.services,
      logger: logger.child({ part: 'tunnels' }),
      peerOf: (session) => sessions.get(session),
    });
    return { settings, log, publisher, replay, sources, sessions, writes, tunnels };
  } catch (error) {
    await log.close();
    throw error;
  }
}

export async function openIt(
  config: AgentConfig,
  logger: Logger,
  onStorageFailure: (error: unknown) => void,
  agentName: string,
): Promise<ItPart> {
  const settings = config.it;
  const tunnels = new TunnelEntrance({
    entrances: settings?.tunnels ?? [],
    logger: logger.child({ part: 'tunnels' }),
  });
  if (settings === undefined) return { consumers: [], sinks: [], tunnels };
  const sinks = new Map<string, Sink>();
  try {
    for (const sink of settings.sinks) {
      sinks.set(
        sink.name,
        sink.type === 'recent'
          ? await openRecentSink({
              name: sink.name,
              dir: sink.dir,
              maxEntriesPerTopic: sink.historyPerTopic,
              maxEntries: sink.historyEntries,
              maxAgeMs: sink.maxAgeMs,
              snapshotIntervalMs: sink.snapshotIntervalMs,
            })
          : sink.type === 'mqtt'
            ? await openMqttSink({
                config: sink,
                agentName,
                stateDir: sinkStateDir(config.state, sink.name),
                logger: logger.child({ sink: sink.name }),
              })
            : await openJsonLinesSink({ dir: sink.dir, name: sink.name }),
      );
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
  for (const sink of sinks.values()) sink.followPeers?.(() => peerStates(consumers, sink));
  try {
    await tunnels.listen();
  } catch (error) {
    await Promise.all([...sinks.values()].map((sink) => sink.close()));
    throw error;
  }
  return { consumers, sinks: [...sinks.values()], tunnels };
}

/** OT agent -> whether a consumer of `sink` from it has its session now (live or replaying). */
function peerStates(consumers: ItPart['consumers'], sink: Sink): Map<string, boolean> {
  const states = new Map<string, boolean>();
  for (const { consumer, sink: target, settings } of consumers) {
    if (target !== sink) continue;
    const state = consumer.stats().state;
    const online = state === 'live' || state === 'replaying';
    states.set(settings.from, online || states.get(settings.from) === true);
  }
  return states;
}
