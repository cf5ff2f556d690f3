/**
 * The IT agent's write key: an Ed25519 key pair of its own, made by the agent under its state
 * directory (`write-key.pem`, 0600, never sent anywhere), with which it signs every write command.
 * It is not the TLS key: the relay's CA certifies that one, so a relay could stand in for it; an
 * OT operator pins this key's public half (`dmz-agent writes key`) and no CA can stand in for that.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { quote } from '../../relay/protocol/command-line.ts';
import { DmzError } from '../../relay/protocol/errors.ts';
import {
  createPrivateDirectory,
  syncDirectory,
  writeNewFileFlushed,
} from '../../relay/protocol/durable-files.ts';
import { refuseOpenPermissions } from '../../relay/protocol/file-permissions.ts';
import type { SigningKey } from '../ot/writes/command.ts';
import { jwkThumbprint, parsePublicKey, type PublicJwk } from '../ot/writes/keys.ts';

export const WRITE_KEY_FILE = 'write-key.pem';

export interface WriteKey extends SigningKey {
  readonly publicJwk: PublicJwk;
  readonly publicPem: string;
  readonly path: string;
}

/** The key in `state`, made first when there is none. AGENT_ERR_WRITE_KEY when it cannot be. */
export async function loadWriteKey(state: string): Promise<WriteKey> {
  const path = join(state, WRITE_KEY_FILE);
  try {
    return await readWriteKey(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw keyError(path, error);
  }
  try {
    await createPrivateDirectory(state);
    const { privateKey } = generateKeyPairSync('ed25519');
    await writeNewFileFlushed(path, privateKey.export({ format: 'pem', type: 'pkcs8' }));
    await syncDirectory(state);
  } catch (error) {
    // Two processes made one at once: the one that won is the key.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw keyError(path, error);
  }
  try {
    return await readWriteKey(path);
  } catch (error) {
    throw keyError(path, error);
  }
}

async function readWriteKey(path: string): Promise<WriteKey> {
  const pem = await readFile(path, 'utf8');
  refuseOpenPermissions(path, { code: 'AGENT_ERR_WRITE_KEY' });
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 key');
  const publicKey = createPublicKey(privateKey);
  const publicPem = publicKey.export({ format: 'pem', type: 'spki' }) as string;
  const publicJwk = parsePublicKey(publicPem);
  return { privateKey, kid: jwkThumbprint(publicJwk), publicJwk, publicPem, path };
}

function keyError(path: string, cause: unknown): DmzError {
  if (cause instanceof DmzError) return cause;
  return new DmzError(
    'AGENT_ERR_WRITE_KEY',
    `cannot use the write key ${quote(path)}: ${(cause as Error).message}`,
    {
      cause,
      hint: "it is the agent's own: run as the agent's user, or remove a damaged file to make a new key (and pin it again on the OT side)",
    },
  );
}
