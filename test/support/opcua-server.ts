/**
 * A real OPC UA server for tests: node-opcua's own OPCUAServer on a fixed loopback port (so a
 * restart comes back where the client looks), its PKI in a directory of the test's, trusting no
 * client until the test says so. Variables live in namespace 1 as `ns=1;s=<name>`; the test sets
 * their values and StatusCodes from the source side, as a PLC's driver would.
 */
import '../../agents/ot/sources/opcua/library-log.ts';
import { join } from 'node:path';
import {
  DataType,
  MessageSecurityMode,
  OPCUACertificateManager,
  OPCUAServer,
  SecurityPolicy,
  StatusCodes,
  Variant,
  VariantArrayType,
  type StatusCode,
  type UAVariable,
} from 'node-opcua';
import { readCertificateFile } from '../../agents/ot/sources/opcua/certificates.ts';

export interface VariableSpec {
  readonly name: string;
  readonly dataType: DataType;
  readonly value: unknown;
  readonly arrayType?: VariantArrayType;
}

export interface TestServerOptions {
  readonly port: number;
  readonly pkiDir: string;
  readonly variables: readonly VariableSpec[];
  /** Default: None only. */
  readonly securityModes?: readonly MessageSecurityMode[];
  readonly securityPolicies?: readonly SecurityPolicy[];
  /** user name -> password; anonymous sessions are always allowed. */
  readonly users?: Readonly<Record<string, string>>;
  /** The server's MaxMonitoredItemsPerCall (Part 5 §6.3.11); default node-opcua's. */
  readonly maxMonitoredItemsPerCall?: number;
}

/** Fast enough that a test waits on the order of 100 ms for a change to arrive. */
const MINIMUM_SAMPLING_INTERVAL_MS = 20;

export class TestOpcuaServer {
  readonly #options: TestServerOptions;
  readonly #manager: OPCUACertificateManager;
  /** For X.509 user tokens, which no test uses: here so that node-opcua makes none in $HOME. */
  readonly #userManager: OPCUACertificateManager;
  #server: OPCUAServer | undefined;
  #variables = new Map<string, UAVariable>();
  /** `<mode>/<policy>` of every secure channel opened so far (`Sign/Basic256Sha256`). */
  readonly channels: string[] = [];
  /** The address every channel came from, in order. */
  readonly peers: string[] = [];

  private constructor(options: TestServerOptions) {
    this.#options = options;
    this.#manager = new OPCUACertificateManager({
      rootFolder: options.pkiDir,
      automaticallyAcceptUnknownCertificate: false,
      disableFileWatchers: true,
    });
    this.#userManager = new OPCUACertificateManager({
      rootFolder: join(options.pkiDir, 'users'),
      automaticallyAcceptUnknownCertificate: false,
      disableFileWatchers: true,
    });
  }

  static async start(options: TestServerOptions): Promise<TestOpcuaServer> {
    const server = new TestOpcuaServer(options);
    await server.#manager.initialize();
    await server.#userManager.initialize();
    await server.restart();
    return server;
  }

  get endpoint(): string {
    return `opc.tcp://127.0.0.1:${this.#options.port}`;
  }

  /** The server's own certificate (DER), as the test hands it to the client out of band. */
  certificate(): Buffer {
    return readCertificateFile(join(this.#options.pkiDir, 'own', 'certs', 'certificate.pem'));
  }

  certificateFile(): string {
    return join(this.#options.pkiDir, 'own', 'certs', 'certificate.pem');
  }

  /** Trusts a client's certificate (DER or PEM file), as the server's operator would. */
  async trustClient(certificateFile: string): Promise<void> {
    await this.#manager.trustCertificate(readCertificateFile(certificateFile));
  }

  /** Sets a variable's value (keeping its type) and StatusCode, stamped now by the "device". */
  set(
    name: string,
    value: unknown,
    statusCode: StatusCode = StatusCodes.Good,
    sourceTimestamp = new Date(),
  ): void {
    const variable = this.#variables.get(name);
    const spec = this.#options.variables.find((candidate) => candidate.name === name);
    if (variable === undefined || spec === undefined) throw new Error(`no variable ${name}`);
    variable.setValueFromSource(
      new Variant({ dataType: spec.dataType, arrayType: spec.arrayType ?? VariantArrayType.Scalar, value }),
      statusCode,
      sourceTimestamp,
    );
  }

  /** A variable's value as the server holds it now (what a client's write left there). */
  value(name: string): unknown {
    const variable = this.#variables.get(name);
    if (variable === undefined) throw new Error(`no variable ${name}`);
    return variable.readValue().value.value as unknown;
  }

  async stop(): Promise<void> {
    await this.#server?.shutdown(0);
    this.#server = undefined;
  }

  /** Starts again on the same port with the same certificate; variables start from their specs. */
  async restart(): Promise<void> {
    await this.stop();
    const users = this.#options.users ?? {};
    const server = new OPCUAServer({
      port: this.#options.port,
      hostname: '127.0.0.1',
      serverCertificateManager: this.#manager,
      userCertificateManager: this.#userManager,
      securityModes: [...(this.#options.securityModes ?? [MessageSecurityMode.None])],
      securityPolicies: [...(this.#options.securityPolicies ?? [SecurityPolicy.None])],
      allowAnonymous: true,
      userManager: { isValidUser: (name: string, password: string) => users[name] === password },
      disableDiscovery: true,
      ...(this.#options.maxMonitoredItemsPerCall === undefined
        ? {}
        : {
            serverCapabilities: {
              operationLimits: { maxMonitoredItemsPerCall: this.#options.maxMonitoredItemsPerCall },
            },
          }),
    });
    server.on('newChannel', (channel) => this.peers.push(channel.remoteAddress));
    server.on('channelSecured', (channel) => {
      const policy = channel.securityPolicy.split('#')[1] ?? channel.securityPolicy;
      this.channels.push(`${MessageSecurityMode[channel.securityMode]}/${policy}`);
    });
    await server.initialize();
    const addressSpace = server.engine.addressSpace;
    if (addressSpace === null) throw new Error('the server has no address space');
    const namespace = addressSpace.getOwnNamespace();
    this.#variables = new Map();
    for (const spec of this.#options.variables) {
      const variable = namespace.addVariable({
        organizedBy: addressSpace.rootFolder.objects,
        browseName: spec.name,
        nodeId: `s=${spec.name}`,
        dataType: DataType[spec.dataType],
        ...(spec.arrayType === VariantArrayType.Array ? { valueRank: 1 } : {}),
        minimumSamplingInterval: MINIMUM_SAMPLING_INTERVAL_MS,
      });
      this.#variables.set(spec.name, variable);
      this.set(spec.name, spec.value);
    }
    await server.start();
    this.#server = server;
  }

  async close(): Promise<void> {
    await this.stop();
    await this.#manager.dispose();
    await this.#userManager.dispose();
  }
}
