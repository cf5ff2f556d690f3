/**
 * Reading a YAML configuration file, the same way for relay.yaml and agent.yaml, at start and at
 * every reload: the file read, then refused if another user could change it (file-permissions.ts:
 * it says who may do what), then parsed with duplicate keys and YAML errors reported against it.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { fileError } from './command-line.ts';
import { ConfigError, DmzError } from './errors.ts';
import { refuseWritableByOthers } from './file-permissions.ts';

/** Alias expansions one document may make: enough for any real config, not a billion laughs. */
const MAX_ALIAS_COUNT = 100;

/** The document of `path` as plain values, for the caller's own validator. */
export async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
    refuseWritableByOthers(path);
  } catch (cause) {
    if (cause instanceof DmzError) throw cause;
    // Gone or moved between the read and the check: as unreadable as a file never there.
    const { message } = fileError('read the configuration file', path, cause);
    throw new DmzError('CONFIG_ERR_UNREADABLE', message, { cause, hint: 'check --config' });
  }
  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => ({ path: '', message: `YAML: ${error.message}` })),
      path,
    );
  }
  return document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
}
