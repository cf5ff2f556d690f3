/**
 * Certificates as the trust step reads them, in memory: a chain of concatenated DER split leaf
 * first, a malformed one refused, fingerprints in the forms operators copy them; and the command
 * line of `dmz-agent opcua trust`, refused before anything connects.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { runAgentCli } from '../../../../../agents/cli.ts';
import {
  describeCertificate,
  normalizeFingerprint,
  splitCertificateChain,
} from '../../../../../agents/ot/sources/opcua/certificates.ts';
import { DmzError } from '../../../../../relay/protocol/errors.ts';
import { captureOutput } from '../../../../support/cli-output.ts';
import { createTestPki } from '../../../../support/test-pki.ts';

const FINGERPRINT =
  'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89';

describe('opcua certificates', () => {
  it('splits a chain leaf first and describes each certificate', async () => {
    const pki = await createTestPki();
    const agent = new X509Certificate((await pki.issueAgent('ot', 'press-7')).certPem).raw;
    const ca = new X509Certificate(pki.ca.certPem).raw;
    const chain = splitCertificateChain(Buffer.concat([agent, ca]));
    assert.deepEqual(
      chain.map((der) => der.equals(agent) || der.equals(ca)),
      [true, true],
    );
    assert.ok(chain[0]?.equals(agent));
    const described = describeCertificate(ca);
    assert.equal(described.sha256, new X509Certificate(ca).fingerprint256);
    assert.match(described.thumbprint, /^[0-9a-f]{40}$/);
    assert.match(described.subject, /CN=dmz-relay test CA/);
    assert.throws(
      () => splitCertificateChain(Buffer.concat([agent, Buffer.from([0x30, 0x82, 0xff])])),
      (error) => {
        return error instanceof DmzError && error.code === 'PKI_ERR_CERT_INVALID';
      },
    );
    assert.throws(() => splitCertificateChain(Buffer.alloc(0)), DmzError);
  });

  it('reads a fingerprint as operators copy it, and nothing else', () => {
    for (const form of [
      FINGERPRINT,
      FINGERPRINT.toLowerCase(),
      FINGERPRINT.replaceAll(':', ''),
      `SHA256:${FINGERPRINT}`,
    ]) {
      assert.equal(normalizeFingerprint(form), FINGERPRINT, form);
    }
    for (const wrong of [
      '',
      'AB:CD',
      FINGERPRINT.slice(3),
      `${FINGERPRINT}:00`,
      FINGERPRINT.replace('AB', 'XY'),
    ]) {
      assert.equal(normalizeFingerprint(wrong), undefined, wrong);
    }
  });

  const usage: [string, string[], number, RegExp][] = [
    ['shows its help', ['opcua', '--help'], 0, /Usage: dmz-agent opcua trust --config FILE --source NAME/],
    ['needs an action', ['opcua'], 2, /an action is required: opcua trust \(CLI_ERR_USAGE\)/],
    ['knows only trust', ['opcua', 'forget'], 2, /unknown opcua action "forget"/],
    ['needs --config', ['opcua', 'trust', '--source', 'plc'], 2, /--config FILE is required/],
    ['needs --source', ['opcua', 'trust', '--config', 'agent.yaml'], 2, /--source NAME is required/],
    [
      'refuses a fingerprint that is none',
      ['opcua', 'trust', '--config', 'agent.yaml', '--source', 'plc', '--fingerprint', 'ab:cd'],
      2,
      /--fingerprint must be a SHA-256 fingerprint/,
    ],
  ];
  for (const [what, argv, status, message] of usage) {
    it(`dmz-agent opcua ${what}`, async () => {
      const run = captureOutput();
      assert.equal(await runAgentCli(argv, {}, run.output), status);
      assert.match(status === 0 ? run.stdout() : run.stderr(), message);
    });
  }

  it('dmz-agent --help lists the opcua command', async () => {
    const run = captureOutput();
    assert.equal(await runAgentCli(['--help'], {}, run.output), 0);
    assert.match(run.stdout(), /opcua {5}trust an OPC UA server's certificate/);
  });
});
