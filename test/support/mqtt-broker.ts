/**
 * A real MQTT broker for tests: aedes 1.x (MQTT 3.1.1) in-process, on a port chosen once so that it
 * can be stopped and started again on the same port, over TCP or TLS. It records what the clients
 * under test do: their subscriptions, what they publish, where they connect from.
 */
import { once } from 'node:events';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { Aedes, type AedesOptions, type AedesPublishPacket, type Client } from 'aedes';
import { freePort } from './ports.ts';

export interface PublishedByClient {
  readonly clientId: string;
  readonly topic: string;
  readonly payload: Buffer;
}

export interface TestBrokerOptions {
  /** Serve TLS with these options (certificate, key, and for client certificates ca + requestCert). */
  readonly tls?: TlsOptions;
  readonly aedes?: AedesOptions;
}

export class TestBroker {
  readonly port: number;
  readonly #options: TestBrokerOptions;
  #broker: Aedes | undefined;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  /** Filters subscribed in the current broker run, by client id. */
  readonly subscriptions = new Map<string, Set<string>>();
  /** Messages clients published, across runs. */
  readonly published: PublishedByClient[] = [];
  /** The address each connection came from, across runs, in order. */
  readonly remoteAddresses: string[] = [];
  /** Broker runs so far (starts and restarts). */
  runs = 0;

  private constructor(port: number, options: TestBrokerOptions) {
    this.port = port;
    this.#options = options;
  }

  static async start(options: TestBrokerOptions = {}): Promise<TestBroker> {
    const broker = new TestBroker(await freePort(), options);
    await broker.#listen();
    return broker;
  }

  get url(): string {
    return `${this.#options.tls === undefined ? 'mqtt' : 'mqtts'}://127.0.0.1:${this.port}`;
  }

  /** Connections open right now. */
  get connections(): number {
    return this.#sockets.size;
  }

  subscribed(clientId: string): ReadonlySet<string> {
    return this.subscriptions.get(clientId) ?? new Set();
  }

  /** Publishes as the broker itself (no client): what a device on the plant network would send. */
  async publish(
    topic: string,
    payload: string | Uint8Array,
    options: { qos?: 0 | 1; retain?: boolean } = {},
  ) {
    const broker = this.#broker;
    if (broker === undefined) throw new Error('the broker is stopped');
    const packet = {
      cmd: 'publish' as const,
      topic,
      payload: typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload),
      qos: options.qos ?? 0,
      retain: options.retain ?? false,
      dup: false,
    };
    await new Promise<void>((resolve, reject) =>
      broker.publish(packet, (error) => (error ? reject(error) : resolve())),
    );
  }

  /** Closes the broker and its listener, and every connection with them. */
  async stop(): Promise<void> {
    const broker = this.#broker;
    const server = this.#server;
    this.#broker = undefined;
    this.#server = undefined;
    if (broker === undefined || server === undefined) return;
    const closed = once(server, 'close');
    server.close();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await closed;
    this.subscriptions.clear();
  }

  /** Cuts every connection, as a network outage would; the broker and its sessions live on. */
  dropConnections(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  /** A new broker (no sessions, no retained messages) on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#listen();
  }

  async #listen(): Promise<void> {
    const broker = await Aedes.createBroker(this.#options.aedes);
    broker.on('subscribe', (subscriptions, client: Client) => {
      const filters = this.subscriptions.get(client.id) ?? new Set<string>();
      for (const subscription of subscriptions) filters.add(subscription.topic);
      this.subscriptions.set(client.id, filters);
    });
    broker.on('clientDisconnect', (client: Client) => this.subscriptions.delete(client.id));
    broker.on('publish', (packet: AedesPublishPacket, client: Client | null) => {
      if (client === null) return;
      this.published.push({ clientId: client.id, topic: packet.topic, payload: Buffer.from(packet.payload) });
    });
    const handle = (socket: Socket): void => {
      this.#sockets.add(socket);
      this.remoteAddresses.push(socket.remoteAddress ?? '');
      socket.once('close', () => this.#sockets.delete(socket));
      broker.handle(socket);
    };
    const server =
      this.#options.tls === undefined
        ? createTcpServer(handle)
        : createTlsServer(this.#options.tls, (socket) => handle(socket));
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.#broker = broker;
    this.#server = server;
    this.runs++;
  }
}
