/**
 * The OT exit's log under a flood of refused stream opens: an IT agent the relay grants a tunnel
 * can ask for refusals at will (a service the OT agent does not have, a full service), and each
 * must not cost a log line, or the flood fills the OT host's disk. The refusals themselves all go
 * back to the relay; the log keeps the 1st, 2nd, 4th, ... with the count so far.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { TunnelExit } from '../../../agents/tunnels/exit.ts';
import type { TunnelLink } from '../../../agents/tunnels/stream-mux.ts';

describe('tunnel exit - log of refused opens', () => {
  it('logs 1,000 refused opens in 10 lines, the last one counting 512, and refuses every one', () => {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const exit = new TunnelExit({ services: [], logger: pino(destination), peerOf: () => 'scada' });
    const closes: string[] = [];
    const link: TunnelLink = {
      closed: false,
      welcome: { maxFrameBytes: 1024 * 1024 },
      bufferedBytes: 0,
      whenWritable: () => Promise.resolve(),
      sendStreamData: () => undefined,
      grantStreamCredit: () => undefined,
      closeStream: (_session, _stream, code) => void closes.push(code),
    };
    exit.attach(link);
    for (let stream = 1; stream <= 1000; stream++)
      exit.streamOpened({ type: 'streamOpen', session: 1, stream, service: 'nope', window: 1024 });
    assert.equal(closes.length, 1000);
    assert.ok(closes.every((code) => code === 'AGENT_ERR_TUNNEL_NO_SERVICE'));
    assert.equal(lines.length, 10);
    assert.equal(lines.at(-1)?.['refused'], 512);
    assert.equal(exit.stats().refused, 1000);
  });
});
