/**
 * The checks of an OPC UA section that its schema cannot make: an opc.tcp endpoint, a mode and
 * policy that go together (and no deprecated policy), no password over an unsecured channel,
 * absolute paths, durations in range, item names that are topic segments and unique, node ids in
 * their string form. Each problem names its key path.
 */
import { isAbsolute } from 'node:path';
import { isIP } from 'node:net';
import { formatDuration, parseDuration } from '../../../../pki/duration.ts';
import type { ConfigIssue } from '../../../../relay/protocol/errors.ts';
import { validateTopic } from '../../../../relay/protocol/topics.ts';
import {
  DEPRECATED_POLICIES,
  MAX_INTERVAL_MS,
  MAX_RECONNECT_MS,
  MIN_INTERVAL_MS,
  MIN_RECONNECT_MS,
  SECURITY_POLICIES,
  type OpcuaConfig,
} from './config.ts';

/**
 * A node id in the string form of OPC UA Part 6 §5.3.1.10: an optional `ns=<index>;` and one of
 * `i=<UInt32>`, `s=<text>`, `g=<Guid>`, `b=<base64>`. The `nsu=<uri>;` form needs the server's
 * namespace table and is not taken.
 */
const NODE_ID =
  /^(?:ns=(\d{1,5});)?(?:i=(\d{1,10})|s=.+|g=[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}|b=[A-Za-z0-9+/]+={0,2})$/s;
const MAX_NAMESPACE_INDEX = 0xffff;
const MAX_NUMERIC_IDENTIFIER = 0xffff_ffff;

/** Problems of a schema-valid OPC UA section, with key paths under `at`. */
export function checkOpcuaConfig(config: OpcuaConfig, at: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  checkTopic(issues, `${at}/name`, config.name, true);
  const prefix = config.prefix ?? config.name;
  if (config.prefix !== undefined) checkTopic(issues, `${at}/prefix`, config.prefix, false);
  checkEndpoint(issues, `${at}/endpoint`, config.endpoint);
  checkSecurity(issues, at, config);
  if (config.localAddress !== undefined && isIP(config.localAddress) === 0) {
    issues.push({ path: `${at}/localAddress`, message: 'must be an IPv4 or IPv6 address of this host' });
  }
  checkDuration(
    issues,
    `${at}/publishingInterval`,
    config.publishingInterval,
    MIN_INTERVAL_MS,
    MAX_INTERVAL_MS,
  );
  checkDuration(issues, `${at}/samplingInterval`, config.samplingInterval, MIN_INTERVAL_MS, MAX_INTERVAL_MS);
  const base = checkDuration(
    issues,
    `${at}/reconnectBase`,
    config.reconnectBase,
    MIN_RECONNECT_MS,
    MAX_RECONNECT_MS,
  );
  const cap = checkDuration(
    issues,
    `${at}/reconnectCap`,
    config.reconnectCap,
    MIN_RECONNECT_MS,
    MAX_RECONNECT_MS,
  );
  if (base !== undefined && cap !== undefined && base > cap) {
    issues.push({ path: `${at}/reconnectBase`, message: 'must not exceed reconnectCap' });
  }
  const names = new Map<string, string>();
  config.items.forEach((item, index) => {
    const path = `${at}/items/${index}`;
    if (
      checkTopic(issues, `${path}/name`, item.name, true) &&
      checkTopic(issues, `${path}/name`, `${prefix}/${item.name}`, false)
    ) {
      const first = names.get(item.name);
      if (first === undefined) names.set(item.name, `${path}/name`);
      else
        issues.push({
          path: `${path}/name`,
          message: `item name "${item.name}" is already used at ${first}`,
        });
    }
    checkNodeId(issues, `${path}/nodeId`, item.nodeId);
    if (item.samplingInterval !== undefined) {
      checkDuration(
        issues,
        `${path}/samplingInterval`,
        item.samplingInterval,
        MIN_INTERVAL_MS,
        MAX_INTERVAL_MS,
      );
    }
  });
  return issues;
}

function checkSecurity(issues: ConfigIssue[], at: string, config: OpcuaConfig): void {
  const { mode, policy, serverCertificate } = config.security;
  const path = `${at}/security/policy`;
  if (policy !== undefined) {
    if ((DEPRECATED_POLICIES as readonly string[]).includes(policy)) {
      issues.push({ path, message: `${policy} is deprecated (SHA-1): use ${SECURITY_POLICIES.join(', ')}` });
    } else if (mode === 'None' && policy !== 'None') {
      issues.push({ path, message: 'must be None (or left out) with mode None' });
    } else if (mode !== 'None' && policy === 'None') {
      issues.push({ path, message: `mode ${mode} needs a policy: ${SECURITY_POLICIES.join(', ')}` });
    } else if (policy !== 'None' && !(SECURITY_POLICIES as readonly string[]).includes(policy)) {
      issues.push({ path, message: `must be one of: ${SECURITY_POLICIES.join(', ')}` });
    }
  }
  if (serverCertificate !== undefined) {
    if (mode === 'None') {
      issues.push({
        path: `${at}/security/serverCertificate`,
        message: 'applies to modes Sign and SignAndEncrypt only',
      });
    }
    checkAbsolute(issues, `${at}/security/serverCertificate`, serverCertificate);
  }
  if (config.user !== undefined) {
    if (mode === 'None') {
      issues.push({
        path: `${at}/user`,
        message:
          'a password must not cross an unsecured channel to a server nobody verified: use mode Sign or SignAndEncrypt',
      });
    }
    checkAbsolute(issues, `${at}/user/passwordFile`, config.user.passwordFile);
  }
}

function checkEndpoint(issues: ConfigIssue[], at: string, endpoint: string): void {
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== 'opc.tcp:' || url.hostname === '' || url.search !== '' || url.hash !== '') {
    issues.push({ path: at, message: 'must be an opc.tcp:// URL, such as opc.tcp://plc1.plant.local:4840' });
  } else if (url.username !== '' || url.password !== '') {
    issues.push({ path: at, message: 'must not hold credentials: use user.name and user.passwordFile' });
  }
}

function checkNodeId(issues: ConfigIssue[], at: string, nodeId: string): void {
  const match = NODE_ID.exec(nodeId);
  const namespace = match?.[1] === undefined ? 0 : Number(match[1]);
  const numeric = match?.[2] === undefined ? 0 : Number(match[2]);
  if (match === null || namespace > MAX_NAMESPACE_INDEX || numeric > MAX_NUMERIC_IDENTIFIER) {
    issues.push({
      path: at,
      message: 'must be a node id such as ns=2;s=Line1.Temperature, ns=3;i=1001 or i=2258',
    });
  }
}

function checkAbsolute(issues: ConfigIssue[], at: string, path: string): void {
  if (!isAbsolute(path)) issues.push({ path: at, message: 'must be an absolute path' });
}

/** True when `topic` is a valid topic (and, if `segment`, one segment). */
function checkTopic(issues: ConfigIssue[], at: string, topic: string, segment: boolean): boolean {
  if (segment && topic.includes('/')) {
    issues.push({ path: at, message: 'must be one topic segment (no "/")' });
    return false;
  }
  try {
    validateTopic(topic);
    return true;
  } catch (error) {
    issues.push({ path: at, message: `not a valid topic: ${(error as Error).message}` });
    return false;
  }
}

/** The duration in milliseconds, or undefined (and an issue) when it is not one in range. */
function checkDuration(
  issues: ConfigIssue[],
  at: string,
  text: string,
  min: number,
  max: number,
): number | undefined {
  const ms = parseDuration(text, { milliseconds: true });
  if (ms === undefined || ms < min || ms > max) {
    issues.push({
      path: at,
      message: `must be a duration like 100ms, 5s or 1m, from ${formatDuration(min)} to ${formatDuration(max)}`,
    });
    return undefined;
  }
  return ms;
}
