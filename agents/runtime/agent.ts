/**
 * `dmz-agent run`: one agent process, of the role its certificate names. It keeps a link to the
 * relay (LinkSupervisor), and either logs and serves points (OT: sources -> durable log -> live
 * publish, and replay rounds for consumers) or consumes them (IT: one Consumer per configured
 * stream, each into its sink). Renewal happens on the live link; the agent then moves to the new
 * certificate with a reconnect, which loses and duplicates nothing (the log and the cursors see to
 * that). stop() is what SIGTERM does: sources stop, everything durable is flushed, the link closes.
 */
import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import { versionLine } from '../../relay/protocol/command-line.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import { PRIVATE_DIRECTORY_MODE } from '../../relay/protocol/file-permissions.ts';
import { loadCredentials, type AgentCredentialSet } from '../credentials.ts';
import { loadItApiFiles, startItApi, type ItApiFiles, type RunningItApi } from '../it/api/api-server.ts';
import { RecentSink } from '../it/sinks/recent-sink.ts';
import { WriteClient } from '../it/write-client.ts';
import { loadWriteKey, type WriteKey } from '../it/write-key.ts';
import { RelayLink, type LinkEvents } from '../link/relay-link.ts';
import { scheduleRenewal } from '../renewal.ts';
import type { PointPublisher } from '../ot/publisher.ts';
import { tunnelEvents } from '../tunnels/tunnel-events.ts';
import { attachConsumers, openIt, openOt, type ItPart, type OtPart } from './agent-parts.ts';
import { checkBrokerFiles } from './broker-files.ts';
import { checkConfigRole, type AgentConfig } from './config.ts';
import { LinkSupervisor } from './link-supervisor.ts';
import { itStatus, otStatus } from './part-status.ts';
import { writeStatus, STATUS_INTERVAL_MS, type AgentStatus } from './status.ts';

const SOFTWARE = 'dmz-agent';

export interface AgentOptions {
  readonly config: AgentConfig;
  /** The configuration file, for messages. */
  readonly configSource: string;
  readonly logger: Logger;
}

export class Agent {
  readonly #config: AgentConfig;
  readonly #logger: Logger;
  readonly #startedAt = Date.now();
  #credentials: AgentCredentialSet;
  readonly #supervisor: LinkSupervisor;
  readonly #ot: OtPart | undefined;
  readonly #it: ItPart | undefined;
  #cancelRenewal: (() => void) | undefined;
  #api: RunningItApi | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  #stopping: Promise<void> | undefined;
  #reportFailure: (error: unknown) => void = () => undefined;
  /**
   * Settles when the log or a sink failed at the storage layer (a write or fsync error): after
   * one, a store takes nothing more until it is reopened, so the agent must restart (run-command
   * exits 1, and systemd's Restart=on-failure brings it back; the store's recovery then finds what
   * is really on disk). Never rejects.
   */
  readonly storageFailure: Promise<unknown> = new Promise((resolve) => {
    let reported = false;
    this.#reportFailure = (error) => {
      if (reported) return;
      reported = true;
      resolve(error);
    };
  });

  /** IT role: sends signed writes to OT agents over this agent's link (agents/it/write-client.ts). */
  readonly writes: WriteClient | undefined;

  private constructor(
    options: AgentOptions,
    credentials: AgentCredentialSet,
    ot: OtPart | undefined,
    it: ItPart | undefined,
    writeKey: WriteKey | undefined,
  ) {
    this.#config = options.config;
    this.#logger = options.logger;
    this.#credentials = credentials;
    this.#ot = ot;
    this.#it = it;
    this.writes =
      writeKey === undefined
        ? undefined
        : new WriteClient({
            name: credentials.identity.name,
            key: writeKey,
            link: () => this.#supervisor.link,
          });
    this.#supervisor = new LinkSupervisor({
      connect: (closed) => this.#connect(closed),
      backoff: { baseMs: this.#config.relay.reconnectBaseMs, capMs: this.#config.relay.reconnectCapMs },
      onConnected: (link) => this.#connected(link),
      onDisconnected: () => this.#disconnected(),
      logger: this.#logger,
    });
  }

  /** Opens everything durable (log or sinks) and starts; throws before anything runs if it cannot. */
  static async start(options: AgentOptions): Promise<Agent> {
    const { config } = options;
    const credentials = await loadCredentials(config.credentials);
    const { role, name } = credentials.identity;
    checkConfigRole(config, role, options.configSource);
    await mkdir(config.state, { recursive: true, mode: PRIVATE_DIRECTORY_MODE });
    // Made before anything opens: there is nothing to close when it cannot be.
    const writeKey = role === 'it' && config.it !== undefined ? await loadWriteKey(config.state) : undefined;
    // Every file agent.yaml names is read before the agent connects anywhere (the relay, a
    // broker): one that is missing or open to others stops it here, by its key, with nothing open.
    await checkBrokerFiles(config, options.configSource);
    const apiFiles =
      role === 'it' && config.it?.api !== undefined ? await loadItApiFiles(config.it.api) : undefined;
    const ot =
      role === 'ot' && config.ot !== undefined
        ? await openOt(config.ot, config.state, name, options.logger)
        : undefined;
    let it: ItPart | undefined;
    let agent: Agent | undefined = undefined;
    try {
      it =
        role === 'it' && config.it !== undefined
          ? await openIt(
              config,
              options.logger,
              (error) => {
                if (agent !== undefined) agent.#storageFailed(error);
              },
              name,
            )
          : undefined;
    } catch (error) {
      await ot?.log.close();
      throw error;
    }
    const started = new Agent(options, credentials, ot, it, writeKey);
    agent = started;
    // The API takes its port before the link starts: one that is taken stops the agent here.
    try {
      await started.#startApi(apiFiles);
    } catch (error) {
      await started.stop();
      throw error;
    }
    started.#begin();
    return started;
  }

  /** The IT agent's HTTP API and dashboard, when it.api is configured. */
  get api(): RunningItApi | undefined {
    return this.#api;
  }

  /** A reload's it.api.users, applied to the running API at once (see RunningItApi.reloadUsers). */
  async reloadApiUsers(users: Parameters<RunningItApi['reloadUsers']>[0]): Promise<void> {
    await this.#api?.reloadUsers(users);
  }

  /** The status snapshot (status.json, /healthz, metrics). */
  status(): AgentStatus {
    const { identity } = this.#credentials;
    const link = this.#supervisor.state;
    return {
      name: identity.name,
      role: identity.role,
      pid: process.pid,
      startedAt: new Date(this.#startedAt).toISOString(),
      updatedAt: new Date().toISOString(),
      relay: {
        url: this.#config.relay.url,
        connected: link.connected,
        since: new Date(link.since).toISOString(),
        connects: link.connects,
        lastError: link.lastError,
        ...(link.lastRefusal === undefined
          ? {}
          : {
              lastRefusal: { code: link.lastRefusal.code, at: new Date(link.lastRefusal.at).toISOString() },
            }),
      },
      certificate: { serial: identity.serial, notAfter: identity.notAfter },
      ...(this.#ot === undefined ? {} : { ot: otStatus(this.#ot) }),
      ...(this.#it === undefined ? {} : { it: itStatus(this.#it) }),
      ...this.#tunnelStatus(),
      ...this.#writeStatus(),
    };
  }

  #storageFailed(error: unknown): void {
    this.#logger.fatal({ err: error }, 'storage failed; stopping so the agent restarts and recovers it');
    this.#reportFailure(error);
  }

  /** SIGTERM: stop producing, flush what is durable-bound, close the link, close the stores. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  #begin(): void {
    const ot = this.#ot;
    if (ot !== undefined) {
      const output = {
        write: (topic: string, readings: Parameters<PointPublisher['write']>[1]) =>
          ot.publisher.write(topic, readings).catch((error: unknown) => {
            if (error instanceof DmzError && error.code === 'AGENT_ERR_LOG_FAILED')
              this.#storageFailed(error);
            throw error;
          }),
      };
      for (const source of ot.sources) source.start(output);
    }
    this.#supervisor.start();
    const tick = () => {
      writeStatus(this.#config.state, this.status()).catch((error: unknown) =>
        this.#logger.warn({ err: error }, 'status file not written'),
      );
    };
    tick();
    this.#statusTimer = setInterval(tick, STATUS_INTERVAL_MS);
    this.#statusTimer.unref();
  }

  async #stop(): Promise<void> {
    clearInterval(this.#statusTimer);
    await this.#api?.close();
    this.#cancelRenewal?.();
    if (this.#ot !== undefined) await Promise.all(this.#ot.sources.map((source) => source.stop()));
    if (this.#it !== undefined) {
      await this.#it.tunnels.close();
      await Promise.all(this.#it.consumers.map(({ consumer }) => consumer.close()));
    }
    await this.#supervisor.stop();
    if (this.#ot !== undefined) {
      this.#ot.replay.linkClosed();
      await this.#ot.writes.close();
      await this.#ot.log.close();
    }
    if (this.#it !== undefined) await Promise.all(this.#it.sinks.map((sink) => sink.close()));
    await writeStatus(this.#config.state, this.status()).catch(() => undefined);
  }

  async #startApi(files: ItApiFiles | undefined): Promise<void> {
    const settings = this.#config.it?.api;
    if (settings === undefined) return;
    // config.ts checked that it.api.store names a sink of type recent.
    const store = this.#it?.sinks.find((sink) => sink.name === settings.store);
    if (!(store instanceof RecentSink))
      throw new Error(`it.api.store ${settings.store} is not a recent sink`);
    this.#api = await startItApi({
      config: settings,
      store,
      status: () => this.status(),
      writes: this.writes,
      state: this.#config.state,
      logger: this.#logger,
      ...(files === undefined ? {} : { files }),
      version: versionLine(SOFTWARE).trim().split(' ')[1] ?? 'unknown',
    });
    this.#logger.info({ url: this.#api.url }, 'API and dashboard listening');
  }

  async #connect(closed: (code: number, reason: string) => void): Promise<RelayLink> {
    // Credentials are read again for every link: a renewal (ours, or a re-enrollment) applies.
    this.#credentials = await loadCredentials(this.#config.credentials);
    const { keyPem, certPem, caPem } = this.#credentials;
    return RelayLink.connect(
      {
        url: this.#config.relay.url,
        keyPem,
        certPem,
        caPem,
        software: SOFTWARE,
        connectTimeoutMs: this.#config.relay.connectTimeoutMs,
      },
      { ...this.#events(), closed },
    );
  }

  #events(): LinkEvents {
    const ot = this.#ot;
    const it = this.#it;
    const handlerError = (error: unknown) => this.#logger.error({ err: error }, 'link event handler failed');
    if (ot !== undefined) {
      return {
        sessionOffered: (offer) => {
          ot.sessions.set(offer.session, offer.peer);
          return true;
        },
        subscribed: (subscription) => {
          const link = this.#supervisor.link;
          // Only sessions this agent accepted are served (the relay forwards no others).
          if (link !== undefined && ot.sessions.has(subscription.session))
            ot.replay.subscribed(link, subscription);
        },
        unsubscribed: (unsubscription) =>
          ot.replay.unsubscribed(unsubscription.session, unsubscription.filter),
        request: (request) => ot.writes.handle(request, ot.sessions.get(request.session)),
        sessionClosed: (closed) => {
          ot.tunnels.sessionClosed(closed.session, closed.code);
          ot.sessions.delete(closed.session);
          ot.replay.sessionClosed(closed.session);
        },
        streamOpened: (offer) => ot.tunnels.streamOpened(offer),
        ...tunnelEvents(ot.tunnels),
        handlerError,
      };
    }
    const consumerOf = (session: number) =>
      it?.consumers.find(({ consumer }) => consumer.handles(session))?.consumer;
    return {
      sessionOffered: () => false,
      delivery: (delivery) => consumerOf(delivery.session)?.delivered(delivery),
      dropped: (dropped) => consumerOf(dropped.session)?.dropped(),
      sessionClosed: (closed) => {
        this.writes?.sessionClosed(closed.session);
        if (it?.tunnels.sessionClosed(closed.session, closed.code) === true) return;
        consumerOf(closed.session)?.sessionClosed(closed.code, closed.message);
      },
      ...(it === undefined ? {} : tunnelEvents(it.tunnels)),
      handlerError,
    };
  }

  #connected(link: RelayLink): void {
    this.#ot?.publisher.useLink(link);
    this.#ot?.tunnels.attach(link);
    this.#it?.tunnels.attach(link);
    if (this.#it !== undefined) attachConsumers(this.#it, link, this.#config.it?.tunnels ?? []);
    this.#cancelRenewal?.();
    this.#cancelRenewal = scheduleRenewal({
      client: link,
      dir: this.#config.credentials,
      credentials: this.#credentials,
      onRenewed: (credentials) => {
        this.#credentials = credentials;
        this.#logger.info(
          { serial: credentials.identity.serial, notAfter: credentials.identity.notAfter },
          'certificate renewed; reconnecting with it',
        );
        this.#supervisor.cycle();
      },
      onError: (error) => this.#logger.warn({ err: error }, 'certificate renewal failed; will retry'),
    });
  }

  #disconnected(): void {
    this.#cancelRenewal?.();
    this.#cancelRenewal = undefined;
    if (this.#ot !== undefined) {
      this.#ot.publisher.useLink(undefined);
      this.#ot.replay.linkClosed();
      this.#ot.sessions.clear();
      this.#ot.tunnels.detach();
    }
    this.#it?.tunnels.detach();
    for (const { consumer } of this.#it?.consumers ?? []) consumer.detach();
    this.writes?.linkClosed();
  }

  #tunnelStatus(): Pick<AgentStatus, 'tunnels'> {
    const tunnels = (this.#ot ?? this.#it)?.tunnels;
    return tunnels === undefined ? {} : { tunnels: tunnels.stats() };
  }

  #writeStatus(): Pick<AgentStatus, 'writes'> {
    const writes = this.#ot?.writes ?? this.writes;
    return writes === undefined ? {} : { writes: writes.stats() };
  }
}
