#!/usr/bin/env node
// Runs the TypeScript entry point through tsx's loader (a runtime dependency).
import { register } from 'tsx/esm/api';
register();
const { runPkiCli } = await import('../pki/cli.ts');
process.exitCode = await runPkiCli(process.argv.slice(2));
