/**
 * `dmz-agent opcua trust --config agent.yaml --source NAME [--fingerprint SHA256] [--json]`: the
 * explicit trust step, as SSH's known_hosts or kubeadm's CA pin. It asks the server for its
 * certificate, shows its SHA-256 fingerprint and subject, and trusts it (moves it into the
 * source's trusted/ list) only when `--fingerprint` names exactly that certificate, which the
 * operator read off the server itself. It also shows this agent's own client certificate, which
 * the server's operator must trust in turn.
 */
import { join } from 'node:path';
import {
  EXIT,
  invalidArgument,
  quote,
  type ExitStatus,
  type Output,
} from '../../../../relay/protocol/command-line.ts';
import { DmzError } from '../../../../relay/protocol/errors.ts';
import { loadCredentials } from '../../../credentials.ts';
import { checkConfigRole, loadAgentConfig } from '../../../runtime/config.ts';
import { sourceStateDir } from '../source.ts';
import { describeCertificate, normalizeFingerprint, type CertificateDescription } from './certificates.ts';
import { connectionStrategy } from './client-options.ts';
import {
  closeClientPki,
  describeClientCertificate,
  openClientPki,
  reloadTrust,
  trustServerCertificate,
  verifyServerCertificate,
} from './client-pki.ts';
import { resolveOpcuaSettings, type OpcuaConfig } from './config.ts';
import { fetchServerChain } from './server-certificate.ts';

export interface TrustRequest {
  readonly configPath: string;
  readonly sourceName: string;
  /** The SHA-256 fingerprint the operator expects; without it nothing is trusted. */
  readonly fingerprint: string | undefined;
  readonly json: boolean;
}

export async function trustServer(request: TrustRequest, output: Output): Promise<ExitStatus> {
  const expected = request.fingerprint === undefined ? undefined : normalizeFingerprint(request.fingerprint);
  if (request.fingerprint !== undefined && expected === undefined) {
    throw invalidArgument('--fingerprint must be a SHA-256 fingerprint: 64 hex digits, colons optional');
  }
  const config = await loadAgentConfig(request.configPath);
  const section = findSection(config.ot?.sources ?? [], request.sourceName, request.configPath);
  const { identity } = await loadCredentials(config.credentials);
  checkConfigRole(config, identity.role, request.configPath);
  const settings = resolveOpcuaSettings(section, identity.name);
  const pki = await openClientPki(sourceStateDir(config.state, section.name), {
    agentName: identity.name,
    sourceName: section.name,
  });
  try {
    await reloadTrust(pki);
    const chain = await fetchServerChain(settings, pki, { strategy: connectionStrategy(settings, 0) });
    const leaf = chain[0] as Buffer;
    const server = describeCertificate(leaf);
    const wasTrusted = (await verifyServerCertificate(pki, chain)) === undefined;
    if (expected !== undefined && expected !== server.sha256) {
      throw new DmzError(
        'AGENT_ERR_OPCUA_FINGERPRINT',
        `${settings.endpoint} presents the certificate ${server.sha256}, not ${expected}; nothing was trusted`,
        {
          hint: 'check the fingerprint on the server itself: a different one may be a server replaced, or someone in between',
        },
      );
    }
    if (expected !== undefined && !wasTrusted) await trustServerCertificate(pki, leaf);
    const trusted = wasTrusted || expected !== undefined;
    const client = { certificateFile: pki.certificateFile, ...describeClientCertificate(pki) };
    if (request.json) {
      const report = {
        source: section.name,
        endpoint: settings.endpoint,
        securityMode: settings.securityMode,
      };
      output.stdout(
        `${JSON.stringify({ ...report, securityPolicy: settings.securityPolicy, trusted, server, client })}\n`,
      );
    } else {
      output.stdout(
        render(section.name, settings.endpoint, server, client, {
          wasTrusted,
          trusted,
          trustedDir: join(pki.rootDir, 'trusted'),
        }),
      );
    }
    return EXIT.ok;
  } finally {
    await closeClientPki(pki);
  }
}

function findSection(
  sources: readonly { name: string; type: string }[],
  name: string,
  configPath: string,
): OpcuaConfig {
  const section = sources.find((source) => source.name === name);
  if (section === undefined) {
    const known = sources.filter((source) => source.type === 'opcua').map((source) => source.name);
    throw invalidArgument(
      `${quote(configPath)} has no source named ${quote(name)}`,
      known.length === 0 ? 'it has no opcua source' : `its opcua sources: ${known.join(', ')}`,
    );
  }
  if (section.type !== 'opcua')
    throw invalidArgument(`source ${quote(name)} is of type ${section.type}, not opcua`);
  const opcua = section as OpcuaConfig;
  if (opcua.security.mode === 'None') {
    throw invalidArgument(
      `source ${quote(name)} uses security mode None: there is no certificate to trust`,
      'set security.mode to Sign or SignAndEncrypt',
    );
  }
  return opcua;
}

function render(
  source: string,
  endpoint: string,
  server: CertificateDescription,
  client: CertificateDescription & { certificateFile: string },
  state: { wasTrusted: boolean; trusted: boolean; trustedDir: string },
): string {
  const lines = [
    `server certificate of ${endpoint} (source ${source}):`,
    ...describe(server),
    state.wasTrusted
      ? 'trusted already'
      : state.trusted
        ? `trusted now (in ${state.trustedDir})`
        : `NOT trusted: compare the SHA-256 fingerprint with the one the server itself shows, then run again with --fingerprint ${server.sha256}`,
    '',
    `this agent's client certificate (the server must trust it too): ${client.certificateFile}`,
    ...describe(client),
  ];
  return `${lines.join('\n')}\n`;
}

function describe(certificate: CertificateDescription): string[] {
  return [
    `  SHA-256      ${certificate.sha256}`,
    `  subject      ${certificate.subject}`,
    `  issuer       ${certificate.issuer}`,
    `  application  ${certificate.applicationUri ?? '(none)'}`,
    `  valid        ${certificate.validFrom} to ${certificate.validTo}`,
    `  thumbprint   ${certificate.thumbprint} (SHA-1, as OPC UA tools name it)`,
  ];
}
