/**
 * One OPC UA source's link to its server, for as long as the source runs: verify the server's
 * certificate, connect, open a session, subscribe (Part 4 §5.13), monitor every item (§5.12), and
 * tell the source what happens: data changes, items the server refuses, and the link going down
 * or up. node-opcua repairs a broken connection itself (new channel, session reactivated or made
 * again, subscription transferred or created again with its items); when it cannot (its client
 * gave up, the subscription ended), this starts over with a new client after a backoff.
 */
import './library-log.ts';
import { OPCUAClient, UserTokenType, type ClientSession, type UserIdentityInfo } from 'node-opcua';
import { DmzError } from '../../../../relay/protocol/errors.ts';
import { reconnectDelayMs } from '../../../link/backoff.ts';
import type { SourceTimers, WriteOutcome, WriteValue } from '../source.ts';
import { clientOptions, connectionStrategy, subscriptionParameters } from './client-options.ts';
import { reloadTrust, verifyServerCertificate, type ClientPki } from './client-pki.ts';
import type { OpcuaSettings } from './config.ts';
import { classify, reasonOf, sessionError, stoppedError } from './link-errors.ts';
import { monitorItems, type ItemEvents } from './monitored-items.ts';
import { writeNode } from './node-write.ts';
import { connectError, describeConnectFailure, fetchServerChain } from './server-certificate.ts';

export interface ConnectionEvents extends ItemEvents {
  /** No item's readings come through: a StatusCode name for the points, the error for status. */
  down(reason: string, error: DmzError): void;
  /** Subscribed; readings come through. */
  up(): void;
}

export interface UserCredentials {
  readonly name: string;
  readonly password: string;
}

export interface ConnectionOptions {
  readonly settings: OpcuaSettings;
  readonly pki: ClientPki;
  readonly user: UserCredentials | undefined;
  /**
   * The server certificate the config names (security.serverCertificate), already trusted: used
   * as it is, without asking the server, which lets the source reach servers that refuse the
   * unsecured channel GetEndpoints needs (node-opcua's own server does, without a None endpoint).
   */
  readonly serverCertificate: Buffer | undefined;
  readonly events: ConnectionEvents;
  readonly timers: SourceTimers;
}

export class OpcuaConnection {
  readonly #settings: OpcuaSettings;
  readonly #pki: ClientPki;
  readonly #user: UserCredentials | undefined;
  readonly #serverCertificate: Buffer | undefined;
  readonly #events: ConnectionEvents;
  readonly #timers: SourceTimers;
  #stopped = false;
  #run: Promise<void> | undefined;
  #clients = new Set<OPCUAClient>();
  #endCycle: ((error: DmzError) => void) | undefined;
  #wake: (() => void) | undefined;
  /** Why the latest connection attempt failed, for the status while node-opcua retries. */
  #lastConnectError: Error | undefined;
  /** The session of the current cycle, for writes; undefined between cycles. */
  #session: ClientSession | undefined;

  constructor(options: ConnectionOptions) {
    this.#settings = options.settings;
    this.#pki = options.pki;
    this.#user = options.user;
    this.#serverCertificate = options.serverCertificate;
    this.#events = options.events;
    this.#timers = options.timers;
  }

  start(): void {
    this.#run ??= this.#runCycles();
  }

  /** Writes `value` to `nodeId` in the current session, unless `expired`; a failure when there is none. */
  write(nodeId: string, value: WriteValue, expired: () => boolean): Promise<WriteOutcome> {
    if (this.#session === undefined) {
      return Promise.resolve({
        ok: false,
        code: 'AGENT_ERR_WRITE_DEVICE_FAILED',
        message: 'the OPC UA server is not connected',
        detail: this.#settings.endpoint,
      });
    }
    return writeNode(this.#session, nodeId, value, expired);
  }

  /** Ends the session and every client; resolves once they are closed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    this.#endCycle?.(stoppedError());
    await Promise.all([...this.#clients].map((client) => client.disconnect().catch(() => undefined)));
    await this.#run;
  }

  async #runCycles(): Promise<void> {
    for (let failures = 0; !this.#stopped; failures++) {
      const error = await this.#cycle();
      if (this.#stopped) return;
      this.#events.down(reasonOf(error), error);
      await this.#sleep(
        reconnectDelayMs(failures, {
          baseMs: this.#settings.reconnectBaseMs,
          capMs: this.#settings.reconnectCapMs,
        }),
      );
    }
  }

  /** One client from connect to its end; resolves with why it ended. */
  async #cycle(): Promise<DmzError> {
    const settings = this.#settings;
    const strategy = connectionStrategy(settings);
    let client: OPCUAClient | undefined;
    try {
      await reloadTrust(this.#pki);
      const serverCertificate =
        settings.securityMode === 'None' ? undefined : await this.#verifiedServerChain();
      if (this.#stopped) return stoppedError();
      client = OPCUAClient.create({
        ...clientOptions(
          settings,
          this.#pki,
          {
            mode: settings.securityMode,
            policy: settings.securityPolicy,
            ...(serverCertificate === undefined ? {} : { serverCertificate }),
          },
          { strategy, onConnectError: (error) => (this.#lastConnectError = error) },
        ),
      });
      this.#track(client);
      const ended = new Promise<DmzError>((resolve) => (this.#endCycle = resolve));
      this.#watchClient(client);
      await client.connect(settings.endpoint);
      const session = await client.createSession(this.#identity());
      this.#watchSession(session);
      this.#session = session;
      const subscription = await session.createSubscription2(subscriptionParameters(settings));
      subscription.on('terminated', () =>
        this.#endCycle?.(sessionError('the server ended the subscription')),
      );
      await monitorItems(subscription, this.#settings.items, this.#events);
      this.#events.up();
      return await ended;
    } catch (error) {
      return error instanceof DmzError ? error : classify(settings.endpoint, error, this.#pki);
    } finally {
      this.#endCycle = undefined;
      this.#session = undefined;
      if (client !== undefined) {
        await client.disconnect().catch(() => undefined);
        this.#clients.delete(client);
      }
    }
  }

  /** The server's chain once the trust list says yes; AGENT_ERR_OPCUA_CERTIFICATE otherwise. */
  async #verifiedServerChain(): Promise<Buffer[]> {
    const chain = this.#serverCertificate === undefined ? await this.#askServer() : [this.#serverCertificate];
    const problem = await verifyServerCertificate(this.#pki, chain);
    if (problem === undefined) return chain;
    throw new DmzError(
      'AGENT_ERR_OPCUA_CERTIFICATE',
      `the certificate of ${this.#settings.endpoint} is not trusted (${problem}); check it and trust it: dmz-agent opcua trust --source ${this.#settings.sourceName}`,
      { cause: new Error(problem) },
    );
  }

  async #askServer(): Promise<Buffer[]> {
    let discovery: OPCUAClient | undefined;
    try {
      return await fetchServerChain(this.#settings, this.#pki, {
        strategy: connectionStrategy(this.#settings),
        onConnectError: (error) => (this.#lastConnectError = error),
        onClient: (client) => {
          discovery = client;
          this.#track(client);
        },
      });
    } finally {
      if (discovery !== undefined) this.#clients.delete(discovery);
    }
  }

  #identity(): UserIdentityInfo {
    const user = this.#user;
    return user === undefined
      ? { type: UserTokenType.Anonymous }
      : { type: UserTokenType.UserName, userName: user.name, password: user.password };
  }

  #watchClient(client: OPCUAClient): void {
    client.on('connection_lost', () => this.#down('BadConnectionClosed', 'connection lost; reconnecting'));
    client.on('connection_reestablished', () => this.#events.up());
    client.on('after_reconnection', (error) => {
      if (error !== null && error !== undefined)
        this.#endCycle?.(classify(this.#settings.endpoint, error, this.#pki));
    });
    client.on('reconnection_canceled', () =>
      this.#endCycle?.(connectError(this.#settings.endpoint, 'reconnection canceled')),
    );
  }

  #watchSession(session: ClientSession): void {
    session.on('session_closed', (statusCode) => {
      if (!this.#stopped)
        this.#endCycle?.(sessionError(`the server closed the session (${statusCode.name})`));
    });
  }

  /** Every client is disconnected on stop, and says when it cannot reach the server. */
  #track(client: OPCUAClient): void {
    this.#clients.add(client);
    client.on('backoff', () => {
      const why =
        this.#lastConnectError === undefined
          ? 'cannot connect'
          : describeConnectFailure(this.#lastConnectError);
      this.#down('BadServerNotConnected', `${why}; retrying`);
    });
  }

  #down(reason: string, message: string): void {
    if (this.#stopped) return;
    this.#events.down(
      reason,
      new DmzError('AGENT_ERR_OPCUA_CONNECT', `${this.#settings.endpoint}: ${message}`),
    );
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.#timers.setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        this.#timers.clearTimeout(timer);
        resolve();
      };
    });
  }
}
