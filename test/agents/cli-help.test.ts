/**
 * What `dmz-agent <command> --help` points to in README is there: a help text that sends the
 * reader to a section by name must name a heading README has.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runAgentCli } from '../../agents/cli.ts';
import { captureOutput } from '../support/cli-output.ts';

const README = join(import.meta.dirname, '..', '..', 'README.md');

describe('dmz-agent --help - README pointers', () => {
  for (const command of ['enroll', 'run', 'status']) {
    it(`${command} --help names only README headings that exist`, async () => {
      const headings = new Set(
        (await readFile(README, 'utf8'))
          .split('\n')
          .filter((line) => line.startsWith('#'))
          .map((line) => line.replace(/^#+\s*/, '').replaceAll('`', '')),
      );
      const run = captureOutput();
      await runAgentCli([command, '--help'], {}, run.output);
      const help = run.stdout() + run.stderr();
      for (const [, section] of help.matchAll(/README, "([^"]+)"/g)) {
        const found = [...headings].some((heading) => heading.startsWith(section ?? ''));
        assert.ok(found, `${command} --help points to README "${section}", which has no such heading`);
      }
    });
  }
});
