/**
 * What the OPC UA source tests share: an output that records every write, a source made from a
 * config section the way the runtime makes one (with its own state directory), and waits on the
 * readings a topic got.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PointReading } from '../../../../../agents/points/point.ts';
import { createSource, type SourceConfig } from '../../../../../agents/ot/sources/registry.ts';
import type { PointSource, SourceOutput } from '../../../../../agents/ot/sources/source.ts';
import { waitFor } from '../../../../support/wait.ts';

export const AGENT = 'press-7';
/** node-opcua connects, opens a session and subscribes in well under a second on loopback. */
export const CONNECT_TIMEOUT_MS = 15_000;

export class RecordingOutput implements SourceOutput {
  readonly writes: { readonly topic: string; readonly readings: readonly PointReading[] }[] = [];

  write(topic: string, readings: readonly PointReading[]): Promise<void> {
    this.writes.push({ topic, readings });
    return Promise.resolve();
  }

  readingsOf(topic: string): PointReading[] {
    return this.writes.filter((write) => write.topic === topic).flatMap((write) => write.readings);
  }

  /** The first reading of `topic` after the first `skip` that `matches`, within the bound. */
  async next(
    topic: string,
    matches: (reading: PointReading) => boolean,
    what: string,
    skip = 0,
  ): Promise<PointReading> {
    return waitFor(
      () => this.readingsOf(topic).slice(skip).find(matches),
      `${topic}: ${what}`,
      CONNECT_TIMEOUT_MS,
    );
  }

  count(topic: string): number {
    return this.readingsOf(topic).length;
  }
}

export interface RunningSource {
  readonly source: PointSource;
  readonly output: RecordingOutput;
  readonly stateDir: string;
}

/** Fast waits, so that a restart is noticed and repaired within a second or two. */
export const FAST = {
  publishingInterval: '50ms',
  samplingInterval: '20ms',
  reconnectBase: '200ms',
  reconnectCap: '1s',
} as const;

export function opcuaSection(fields: Record<string, unknown>): SourceConfig {
  return { type: 'opcua', name: 'plc', ...FAST, ...fields } as unknown as SourceConfig;
}

/** A started source with its state under `root` (`<root>/<name>`), as the runtime would make it. */
export function startSource(section: SourceConfig, root: string): RunningSource {
  const stateDir = join(root, 'sources', section.name);
  const source = createSource(section, { agentName: AGENT, stateDir });
  const output = new RecordingOutput();
  source.start(output);
  return { source, output, stateDir };
}

export async function makeTempDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export function topic(name: string, prefix = 'plc'): string {
  return `${AGENT}/${prefix}/${name}`;
}
