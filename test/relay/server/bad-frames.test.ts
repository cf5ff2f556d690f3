import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeFrame } from '../../../relay/protocol/codec.ts';
import type { ErrorCode } from '../../../relay/protocol/errors.ts';
import { FRAME_KIND, type ToRelayFrame } from '../../../relay/protocol/frames.ts';
import { MAX_RESUME_BYTES } from '../../../relay/protocol/limits.ts';
import { RawAgent } from '../../support/raw-agent.ts';
import {
  openMixedSession,
  startTestRelay,
  type FrameRecorder,
  type RecordingAgent,
  type TestRelay,
} from '../../support/relay-harness.ts';
import { createTestPki, type TestPki } from '../../support/test-pki.ts';
import { rawFrame } from '../../support/raw-frame.ts';

/** Above MAX_RESUME_BYTES, so an oversized cursor reaches the decoder inside a frame the relay takes. */
const MAX_FRAME_BYTES = 256 * 1024;

/** The misbehaving side: the OT or IT member of a fresh session, or a raw connection (OT identity). */
type Offender = 'ot' | 'it' | 'raw' | 'raw-before-hello';

interface Sender {
  send(frame: ToRelayFrame): void;
  /** Binary unless given a string, which goes out as a text message. */
  sendRaw(data: Uint8Array | string): void;
}

interface BadFrameCase {
  readonly name: string;
  readonly from: Offender;
  /** `ot` names the session's OT agent, whose namespace is `<ot>/...`. */
  readonly send: (sender: Sender, context: { session: number; ot: string }) => void;
  /** The code the relay answers with; undefined when the WebSocket layer refuses before decoding. */
  readonly code: ErrorCode | undefined;
  /** An error frame (default) or, for a request, its response. */
  readonly answer?: 'error' | 'response';
  /** The error frame names the correlation number of the frame it answers. */
  readonly ref?: number;
  /** What the error's message must say, beyond being printable ASCII (as every message must be). */
  readonly message?: RegExp;
  /** How the relay closes the connection; absent: it stays open and usable. */
  readonly close?: { readonly code: number; readonly reason?: string };
}

const publish = (topic: string, seq = 1): ToRelayFrame => ({
  type: 'publish',
  topic,
  seq,
  count: 1,
  points: Uint8Array.of(seq),
});
const PROTOCOL_ERROR = 1002;
const REQUEST_ID = 99;

const CASES: readonly BadFrameCase[] = [
  {
    name: 'a frame larger than maxFrameBytes',
    from: 'ot',
    send: (s, { ot }) =>
      s.sendRaw(
        rawFrame(FRAME_KIND.publish, {
          topic: `${ot}/x`,
          seq: 1,
          count: 1,
          points: new Uint8Array(MAX_FRAME_BYTES + 1),
        }),
      ),
    code: undefined,
    close: { code: 1009 },
  },
  {
    name: 'truncated MessagePack',
    from: 'ot',
    send: (s) => s.sendRaw(encodeFrame({ type: 'ping', nonce: 123_456 }).subarray(0, -2)),
    code: 'RELAY_ERR_MALFORMED_FRAME',
    close: { code: PROTOCOL_ERROR, reason: 'RELAY_ERR_MALFORMED_FRAME' },
  },
  {
    name: 'a field of the wrong type',
    from: 'ot',
    send: (s) => s.sendRaw(rawFrame(FRAME_KIND.ping, { nonce: 'seven' })),
    code: 'RELAY_ERR_INVALID_FRAME',
  },
  {
    name: 'an unknown frame kind',
    from: 'it',
    send: (s) => s.sendRaw(rawFrame(0x99, { nonce: 1 })),
    code: 'RELAY_ERR_UNKNOWN_FRAME',
    close: { code: PROTOCOL_ERROR, reason: 'RELAY_ERR_UNKNOWN_FRAME' },
  },
  {
    name: 'a stream open missing its stream, service and window',
    from: 'it',
    send: (s) => s.sendRaw(rawFrame(FRAME_KIND.streamOpen, { session: 1 })),
    code: 'RELAY_ERR_INVALID_FRAME',
  },
  {
    name: 'an empty frame',
    from: 'ot',
    send: (s) => s.sendRaw(new Uint8Array(0)),
    code: 'RELAY_ERR_MALFORMED_FRAME',
    close: { code: PROTOCOL_ERROR, reason: 'RELAY_ERR_MALFORMED_FRAME' },
  },
  {
    name: 'a text message',
    from: 'raw',
    send: (s) => s.sendRaw('{"type":"ping","nonce":1}'),
    code: 'RELAY_ERR_MALFORMED_FRAME',
    close: { code: PROTOCOL_ERROR, reason: 'RELAY_ERR_MALFORMED_FRAME' },
  },
  {
    name: 'an extra unknown field',
    from: 'it',
    send: (s) => s.sendRaw(rawFrame(FRAME_KIND.ping, { nonce: 1, admin: true })),
    code: 'RELAY_ERR_INVALID_FRAME',
  },
  {
    name: 'a __proto__ key',
    from: 'it',
    send: (s) => s.sendRaw(rawFrame(FRAME_KIND.ping, { nonce: 1, ['__proto__']: { admin: true } })),
    code: 'RELAY_ERR_MALFORMED_FRAME',
    close: { code: PROTOCOL_ERROR, reason: 'RELAY_ERR_MALFORMED_FRAME' },
  },
  {
    name: 'a wildcard in a publish topic',
    from: 'ot',
    send: (s, { ot }) => s.send(publish(`${ot}/+/t1`)),
    code: 'RELAY_ERR_INVALID_TOPIC',
  },
  {
    name: 'a ".." segment',
    from: 'ot',
    send: (s, { ot }) => s.send(publish(`${ot}/../other/t1`)),
    code: 'RELAY_ERR_INVALID_TOPIC',
  },
  {
    name: 'an empty segment',
    from: 'ot',
    send: (s, { ot }) => s.send(publish(`${ot}//t1`)),
    code: 'RELAY_ERR_INVALID_TOPIC',
  },
  {
    name: 'a control character in a topic',
    from: 'ot',
    send: (s, { ot }) => s.send(publish(`${ot}/t1\n{"event":"forged"}`)),
    code: 'RELAY_ERR_INVALID_TOPIC',
  },
  {
    name: 'a topic 17 levels deep',
    from: 'ot',
    send: (s, { ot }) => s.send(publish([ot, ...new Array<string>(16).fill('a')].join('/'))),
    code: 'RELAY_ERR_INVALID_TOPIC',
  },
  {
    // The schema bounds the string before the topic grammar runs: the frame itself is invalid.
    name: 'a topic longer than 256 bytes',
    from: 'ot',
    send: (s, { ot }) => s.send(publish([ot, ...new Array<string>(5).fill('a'.repeat(60))].join('/'))),
    code: 'RELAY_ERR_INVALID_FRAME',
  },
  {
    name: 'a topic starting with "$"',
    from: 'ot',
    send: (s) => s.send(publish('$SYS/broker/load')),
    code: 'RELAY_ERR_INVALID_TOPIC',
  },
  {
    name: 'a publish outside its own namespace',
    from: 'ot',
    send: (s) => s.send(publish('someone-else/t1')),
    code: 'RELAY_ERR_FORBIDDEN',
  },
  {
    name: 'a frame before hello',
    from: 'raw-before-hello',
    send: (s) => s.send({ type: 'ping', nonce: 1 }),
    code: 'RELAY_ERR_BAD_STATE',
    close: { code: PROTOCOL_ERROR, reason: 'RELAY_ERR_BAD_STATE' },
  },
  {
    name: 'a second hello',
    from: 'ot',
    send: (s) => s.send({ type: 'hello', software: 'again' }),
    code: 'RELAY_ERR_BAD_STATE',
    close: { code: PROTOCOL_ERROR, reason: 'RELAY_ERR_BAD_STATE' },
  },
  {
    name: 'a request to a topic no command grant covers',
    from: 'it',
    send: (s, { ot, session }) =>
      s.send({
        type: 'request',
        session,
        id: REQUEST_ID,
        topic: `${ot}/temps/t1`,
        timeoutMs: 1_000,
        payload: Uint8Array.of(1),
      }),
    code: 'RELAY_ERR_FORBIDDEN',
    answer: 'response',
  },
  {
    name: 'a subscribe in a session that does not exist',
    from: 'it',
    send: (s, { ot, session }) =>
      s.send({ type: 'subscribe', ref: 99, session: session + 1_000_000, filter: `${ot}/#` }),
    code: 'RELAY_ERR_NO_SUCH_SESSION',
    ref: 99,
  },
  {
    name: 'a resume cursor over MAX_RESUME_BYTES',
    from: 'it',
    send: (s, { ot, session }) =>
      s.send({
        type: 'subscribe',
        ref: 76,
        session,
        filter: `${ot}/#`,
        resume: new Uint8Array(MAX_RESUME_BYTES + 1),
      }),
    code: 'RELAY_ERR_INVALID_FRAME',
    message: /\/resume/,
  },
  {
    // The peer name must be an agent name before anything looks it up or quotes it.
    name: 'a session with a peer name carrying control characters',
    from: 'it',
    send: (s) =>
      s.send({ type: 'sessionOpen', ref: 77, peer: 'ghost\n{"event":"forged"}\u001b[2J', filter: '#' }),
    code: 'RELAY_ERR_INVALID_FRAME',
    message: /\/peer/,
  },
  {
    name: 'a session with an OT agent that is not connected',
    from: 'it',
    send: (s) => s.send({ type: 'sessionOpen', ref: 78, peer: 'ghost-ot', filter: 'ghost-ot/#' }),
    code: 'RELAY_ERR_NO_SUCH_PEER',
    ref: 78,
    message: /^no OT agent named "ghost-ot" is connected$/,
  },
];

describe('relay/server bad frames', () => {
  let pki: TestPki;
  let t: TestRelay;
  let bystanderOt: RecordingAgent;
  let bystanderIt: RecordingAgent;
  let bystanderSeq = 0;
  let victims = 0;

  before(async () => {
    pki = await createTestPki();
    t = await startTestRelay(pki, {
      limits: { maxFrameBytes: MAX_FRAME_BYTES, connectionAttemptsPerMinute: 10_000 },
      policy: [{ role: 'ot' }, { role: 'it', subscribe: ['#'], command: ['+/setpoints/#'] }],
    });
    bystanderOt = await t.connect('ot', 'bystander-ot');
    bystanderIt = await t.connect('it', 'bystander-it');
    const { session } = await bystanderIt.client.openSession('bystander-ot', 'bystander-ot/#');
    await bystanderIt.client.subscribe(session, 'bystander-ot/#');
  });
  after(() => t.stop());

  async function assertOthersStillServed(): Promise<void> {
    bystanderOt.client.publish('bystander-ot/heartbeat', ++bystanderSeq, [Uint8Array.of(bystanderSeq)]);
    await bystanderIt.next('deliver', (frame) => frame.seq === bystanderSeq);
  }

  for (const row of CASES) {
    const outcome = row.close === undefined ? 'stays usable' : `is closed with ${row.close.code}`;
    it(`relay - ${row.name}: ${row.code ?? 'refused by the transport'}, the connection ${outcome}`, async () => {
      victims++;
      const otName = `victim-ot-${victims}`;
      const itName = `victim-it-${victims}`;
      // The offender is a raw agent: it sends what the agent link never would, and sees every
      // frame the relay answers with. In a session, it is one side and a real agent the other.
      let raw: RawAgent;
      let ot: FrameRecorder;
      let it: FrameRecorder;
      let session: number;
      let agents: RecordingAgent[];
      if (row.from === 'ot' || row.from === 'it') {
        const mixed = await openMixedSession(t, row.from, otName, itName);
        ({ raw, ot, it, session } = mixed);
        agents = [mixed.agent];
        if (row.from === 'ot') await mixed.agent.client.subscribe(session, `${otName}/#`);
        else await raw.subscribe(session, `${otName}/#`);
      } else {
        const otAgent = await t.connect('ot', otName);
        const itAgent = await t.connect('it', itName);
        ({ session } = await itAgent.client.openSession(otName, `${otName}/#`));
        await itAgent.client.subscribe(session, `${otName}/#`);
        [ot, it, agents] = [otAgent, itAgent, [otAgent, itAgent]];
        const credentials = await pki.issueAgent('ot', `victim-raw-${victims}`);
        raw = await RawAgent.open({
          url: t.url,
          caPem: pki.ca.certPem,
          ...credentials,
          hello: row.from === 'raw',
        });
      }
      try {
        const sender: Sender = {
          send: (frame) => raw.send(frame),
          sendRaw: (data) => raw.sendRaw(data, typeof data !== 'string'),
        };
        const peer = row.from === 'it' ? ot : it;

        row.send(sender, { session, ot: otName });

        if (row.code !== undefined) {
          if ((row.answer ?? 'error') === 'error') {
            const error = await raw.next('error');
            assert.equal(error.code, row.code);
            if (row.ref !== undefined) assert.equal(error.ref, row.ref);
            assert.match(error.message, /^[\x20-\x7e]*$/, 'the error message carries unprintable bytes');
            if (row.message !== undefined) assert.match(error.message, row.message);
          } else {
            const response = await raw.next('response', (frame) => frame.id === REQUEST_ID);
            assert.equal(response.error?.code, row.code);
          }
        }
        if (row.close !== undefined) {
          const closed = await raw.waitClosed();
          assert.equal(closed.code, row.close.code);
          if (row.close.reason !== undefined) assert.equal(closed.reason, row.close.reason);
          // The audit names the violation, even where the WebSocket layer refused before the codec.
          const offender = row.from === 'ot' ? otName : row.from === 'it' ? itName : `victim-raw-${victims}`;
          const reason = row.code ?? 'RELAY_ERR_FRAME_TOO_LARGE';
          await t.audit.waitFor(
            (entry) =>
              entry.event === 'agent.disconnected' &&
              entry['agent'] === offender &&
              entry['reason'] === reason,
            `${offender} disconnected for ${reason}`,
          );
        } else {
          sender.send({ type: 'ping', nonce: 4242 });
          await raw.next('pong', (frame) => frame.nonce === 4242);
          assert.equal(raw.closed, undefined);
        }

        // Nothing of the bad frame reached the other side of the session.
        if (row.from === 'ot' && row.close === undefined) {
          raw.send(publish(`${otName}/marker`, 7));
          await it.next('deliver', (frame) => frame.seq === 7);
        }
        assert.deepEqual(
          peer.frames
            .filter((frame) => frame.type === 'deliver' || frame.type === 'request')
            .map((frame) => frame.type === 'deliver' && frame.topic),
          row.from === 'ot' && row.close === undefined ? [`${otName}/marker`] : [],
        );
      } finally {
        raw.terminate();
        await Promise.all(agents.map((agent) => agent.client.close()));
      }
      await assertOthersStillServed();
    });
  }
});
