/**
 * Targets that fail in the two ways a device can, on loopback, from Debian's python3 (which can
 * hold a port in states Node's net module cannot):
 * - refusing: a socket bound to a port and never listening, so a connect to it is refused (RST)
 *   and no other process can take the port meanwhile (as a free port picked at random could be);
 * - hanging: a listener with a backlog of 0 that never calls accept, whose one queue slot a first
 *   connection takes: the kernel then drops every further SYN, so a connect neither succeeds nor
 *   fails until the client gives up, as with a device behind a dropping firewall, or frozen.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { SYSTEM_PYTHON } from '../../support/pymodbus-device.ts';
import { spawnChild } from '../../support/child-processes.ts';

const HOLD_PORTS = [
  'import socket, sys',
  'refusing = socket.socket()',
  "refusing.bind(('127.0.0.1', 0))",
  'hanging = socket.socket()',
  "hanging.bind(('127.0.0.1', 0))",
  'hanging.listen(0)',
  'print(refusing.getsockname()[1], hanging.getsockname()[1], flush=True)',
  'sys.stdin.read()',
].join('\n');

export interface FailingTargets {
  readonly refusingPort: number;
  readonly hangingPort: number;
  close(): void;
}

export async function startFailingTargets(): Promise<FailingTargets> {
  const child = spawnChild(SYSTEM_PYTHON, ['-c', HOLD_PORTS], { stdio: ['pipe', 'pipe', 'inherit'] });
  // The line may come in more than one read.
  let line = '';
  while (!line.includes('\n')) line += String(((await once(child.stdout, 'data')) as [Buffer])[0]);
  const [refusingPort, hangingPort] = line.trim().split(' ').map(Number) as [number, number];
  const filler: Socket = connect({ host: '127.0.0.1', port: hangingPort });
  filler.on('error', () => undefined);
  await once(filler, 'connect');
  return {
    refusingPort,
    hangingPort,
    close() {
      filler.destroy();
      child.kill();
    },
  };
}
