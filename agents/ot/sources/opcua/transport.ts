/**
 * The opc.tcp transports of a source's clients, made by the factory node-opcua takes
 * (OPCUAClientOptions.transportFactory). With `localAddress`, the socket leaves from that address
 * (a dual-homed host's device-side NIC): node-opcua 2.182 has no such option, so this transport
 * does what its ClientTCP_transport does (connect, then the UACP Hello/Acknowledge of OPC UA Part
 * 6 §7.1.2) from a bound socket. Either way each failed connection attempt is reported: node-opcua
 * retries it in silence, and the source's status should say why (refused, unknown host).
 */
import './library-log.ts';
import { createConnection } from 'node:net';
import {
  ClientTransportBase,
  defaultClientTransportFactory,
  parseEndpointUrl,
  type IClientTransport,
  type IClientTransportFactory,
  type ISocketLike,
} from 'node-opcua';

/** The default OPC UA port (Part 6 §7.2), when the URL names none. */
const OPC_TCP_PORT = 4840;

class BoundTcpTransport extends ClientTransportBase {
  readonly #localAddress: string;

  constructor(localAddress: string, settings?: ConstructorParameters<typeof ClientTransportBase>[0]) {
    super(settings);
    this.#localAddress = localAddress;
  }

  connect(endpointUrl: string, callback: (error?: Error) => void): void {
    this.endpointUrl = endpointUrl;
    let url;
    try {
      url = parseEndpointUrl(endpointUrl);
    } catch (error) {
      callback(error as Error);
      return;
    }
    const port = Number.parseInt(url.port ?? '', 10) || OPC_TCP_PORT;
    const socket = createConnection({
      host: url.hostname ?? '',
      port,
      localAddress: this.#localAddress,
      timeout: this.timeout,
    });
    socket.setNoDelay(false);
    socket.setKeepAlive(true, this.timeout >> 1);
    socket.setTimeout(this.timeout >> 1, () => this.forceConnectionBreak());
    const onError = (error: Error) => {
      socket.removeListener('connect', onConnect);
      callback(error);
    };
    const onConnect = () => {
      socket.removeListener('error', onError);
      this._perform_HEL_ACK_transaction((error) => {
        if (error === null || error === undefined) {
          this._install_post_connect_error_handler(endpointUrl);
          this.emit('connect');
        }
        callback(error ?? undefined);
      });
    };
    // A net.Socket is what node-opcua's own transport installs; its types declare remoteAddress
    // always present, which a socket not yet connected does not have.
    this._install_socket(socket as unknown as ISocketLike);
    socket.once('error', onError);
    socket.once('connect', onConnect);
  }
}

export interface TransportOptions {
  readonly localAddress: string | undefined;
  /** Called with the error of every connection attempt that failed. */
  readonly onConnectError: (error: Error) => void;
}

/** The factory for OPCUAClientOptions.transportFactory: a fresh transport per secure channel. */
export function transportFactory(options: TransportOptions): IClientTransportFactory {
  return {
    create: (settings) => {
      const { localAddress } = options;
      const transport: IClientTransport =
        localAddress === undefined
          ? defaultClientTransportFactory.create(settings)
          : new BoundTcpTransport(localAddress, settings);
      const connect = transport.connect.bind(transport);
      transport.connect = (endpointUrl, callback) =>
        connect(endpointUrl, (error) => {
          if (error !== null && error !== undefined) options.onConnectError(error);
          callback(error);
        });
      return transport;
    },
  };
}
