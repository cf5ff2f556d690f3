/**
 * The OPC UA source's security against a real server that offers Sign and SignAndEncrypt only and
 * trusts no client it was not told to: nothing is trusted blindly. An untrusted server certificate
 * is refused; `dmz-agent opcua trust` shows the fingerprint and trusts only with the right one;
 * Sign and SignAndEncrypt work once both sides trust each other explicitly (by the trust command,
 * or by a configured certificate file); a user name with a password file, and a wrong password.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DataType, MessageSecurityMode, SecurityPolicy } from 'node-opcua';
import { readEnrolledIdentity, storeCredentials } from '../../../../../agents/credentials.ts';
import { runAgentCli } from '../../../../../agents/cli.ts';
import { openClientPki, closeClientPki } from '../../../../../agents/ot/sources/opcua/client-pki.ts';
import { describeCertificate } from '../../../../../agents/ot/sources/opcua/certificates.ts';
import { captureOutput } from '../../../../support/cli-output.ts';
import { TestOpcuaServer } from '../../../../support/opcua-server.ts';
import { freePort } from '../../../../support/ports.ts';
import { createTestPki } from '../../../../support/test-pki.ts';
import { AGENT, makeTempDir, opcuaSection, startSource, topic, type RunningSource } from './opcua-fixture.ts';

const items = [{ name: 'temp', nodeId: 'ns=1;s=Temperature' }];

describe('opcua source security', () => {
  let server: TestOpcuaServer;
  let temp: Awaited<ReturnType<typeof makeTempDir>>;
  let agentState: string;
  let configFile: string;
  let passwordFile: string;
  const running: RunningSource[] = [];

  const section = (name: string, security: Record<string, unknown>, fields: Record<string, unknown> = {}) =>
    opcuaSection({ name, endpoint: server.endpoint, security, items, ...fields });

  function start(config: ReturnType<typeof section>): RunningSource {
    const source = startSource(config, agentState);
    running.push(source);
    return source;
  }

  /** The source's client certificate, made as the source makes it, trusted by the server's operator. */
  async function trustClientOf(name: string): Promise<void> {
    const pki = await openClientPki(join(agentState, 'sources', name), {
      agentName: AGENT,
      sourceName: name,
    });
    await server.trustClient(pki.certificateFile);
    await closeClientPki(pki);
  }

  before(async () => {
    temp = await makeTempDir('opcua-security-');
    agentState = join(temp.dir, 'state');
    server = await TestOpcuaServer.start({
      port: await freePort(),
      pkiDir: join(temp.dir, 'server-pki'),
      variables: [{ name: 'Temperature', dataType: DataType.Double, value: 21.5 }],
      // None is there for discovery only (GetEndpoints, which node-opcua's server answers on a None
      // channel only when it has a None endpoint); the channels the sources open are asserted below.
      securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
      securityPolicies: [SecurityPolicy.Basic256Sha256, SecurityPolicy.Aes256_Sha256_RsaPss],
      users: { operator: 'correct horse' },
    });
    // An enrolled OT agent, as `dmz-agent opcua trust` finds it on the host.
    const pki = await createTestPki();
    const issued = await pki.issueAgent('ot', AGENT);
    const pems = { keyPem: issued.keyPem, certPem: issued.certPem, caPem: pki.ca.certPem };
    const credentials = join(temp.dir, 'credentials');
    await mkdir(credentials, { mode: 0o700 });
    await storeCredentials(credentials, { ...pems, identity: readEnrolledIdentity(pems) });
    passwordFile = join(temp.dir, 'password');
    await writeFile(passwordFile, 'correct horse\n', { mode: 0o600 });
    configFile = join(temp.dir, 'agent.yaml');
    await writeFile(
      configFile,
      JSON.stringify({
        credentials,
        state: agentState,
        relay: { url: 'wss://relay.invalid:8443/v1/agent' },
        ot: { sources: [section('signed', { mode: 'Sign', policy: 'Basic256Sha256' })] },
      }),
    );
  });

  after(async () => {
    await Promise.all(running.map(({ source }) => source.stop()));
    await server.close();
    await temp.remove();
  });

  it('refuses a server certificate nobody trusted: bad quality, a clear error, the certificate in rejected/', async () => {
    const { source, output, stateDir } = start(section('untrusted', { mode: 'SignAndEncrypt' }));
    const refused = await output.next(topic('temp', 'untrusted'), () => true, 'a reading');
    assert.deepEqual([refused.quality, refused.reason], ['bad', 'BadCertificateUntrusted']);
    const error = source.stats().lastError;
    assert.equal(error?.code, 'AGENT_ERR_OPCUA_CERTIFICATE');
    assert.match(
      error?.message ?? '',
      /is not trusted \(BadCertificateUntrusted\).*dmz-agent opcua trust --source untrusted/,
    );
    assert.deepEqual(await readdir(join(stateDir, 'pki', 'trusted', 'certs')), []);
    assert.equal(
      (await readdir(join(stateDir, 'pki', 'rejected'))).length,
      1,
      'kept for the operator to look at',
    );
    assert.ok(output.readingsOf(topic('temp', 'untrusted')).every((reading) => reading.quality === 'bad'));
  });

  it('dmz-agent opcua trust shows the fingerprint, refuses a wrong one, and trusts the right one: Sign works', async () => {
    const expected = describeCertificate(server.certificate()).sha256;
    const shown = captureOutput();
    assert.equal(
      await runAgentCli(['opcua', 'trust', '--config', configFile, '--source', 'signed'], {}, shown.output),
      0,
    );
    assert.match(shown.stdout(), new RegExp(`SHA-256 +${expected}`));
    assert.match(shown.stdout(), /NOT trusted: compare the SHA-256 fingerprint/);
    assert.match(shown.stdout(), /this agent's client certificate .*client_certificate\.pem/);
    const trustedDir = join(agentState, 'sources', 'signed', 'pki', 'trusted', 'certs');
    assert.deepEqual(await readdir(trustedDir), [], 'shown, not trusted');

    const wrong = captureOutput();
    const wrongFingerprint = expected.replace(/^../, expected.startsWith('00') ? '11' : '00');
    const args = ['opcua', 'trust', '--config', configFile, '--source', 'signed', '--fingerprint'];
    assert.equal(await runAgentCli([...args, wrongFingerprint], {}, wrong.output), 1);
    assert.match(wrong.stderr(), /\(AGENT_ERR_OPCUA_FINGERPRINT\)/);
    assert.deepEqual(await readdir(trustedDir), []);

    const right = captureOutput();
    // As an operator copies it from the server's screen: lower case, without colons.
    assert.equal(
      await runAgentCli([...args, expected.replaceAll(':', '').toLowerCase()], {}, right.output),
      0,
    );
    assert.match(right.stdout(), /trusted now/);
    assert.equal((await readdir(trustedDir)).length, 1);

    await trustClientOf('signed');
    const { output } = start(section('signed', { mode: 'Sign', policy: 'Basic256Sha256' }));
    const reading = await output.next(
      topic('temp', 'signed'),
      (candidate) => candidate.quality === 'good',
      'a good value',
    );
    assert.equal(reading.value, 21.5);
    assert.ok(server.channels.includes('Sign/Basic256Sha256'), `channels: ${server.channels.join(', ')}`);
  });

  it('SignAndEncrypt with a configured server certificate and a user name whose password is in a file', async () => {
    await trustClientOf('encrypted');
    const user = { name: 'operator', passwordFile };
    const { output } = start(
      section(
        'encrypted',
        {
          mode: 'SignAndEncrypt',
          policy: 'Aes256_Sha256_RsaPss',
          serverCertificate: server.certificateFile(),
        },
        { user },
      ),
    );
    const reading = await output.next(
      topic('temp', 'encrypted'),
      (candidate) => candidate.quality === 'good',
      'a good value',
    );
    assert.equal(reading.value, 21.5);
    assert.ok(
      server.channels.includes('SignAndEncrypt/Aes256_Sha256_RsaPss'),
      `channels: ${server.channels.join(', ')}`,
    );
  });

  it('a wrong password reads bad with the reason, and says so', async () => {
    await trustClientOf('wrong-password');
    const wrongFile = join(temp.dir, 'wrong-password');
    await writeFile(wrongFile, 'battery staple\n');
    await chmod(wrongFile, 0o600);
    const { source, output } = start(
      section(
        'wrong-password',
        { mode: 'SignAndEncrypt', serverCertificate: server.certificateFile() },
        { user: { name: 'operator', passwordFile: wrongFile } },
      ),
    );
    const refused = await output.next(topic('temp', 'wrong-password'), () => true, 'a reading');
    assert.equal(refused.quality, 'bad');
    assert.match(refused.reason ?? '', /^Bad(UserAccessDenied|IdentityTokenRejected|IdentityTokenInvalid)$/);
    assert.equal(source.stats().lastError?.code, 'AGENT_ERR_OPCUA_SESSION');
  });
});
