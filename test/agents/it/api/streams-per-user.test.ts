/**
 * Live streams one user may hold at once (it.api.maxStreamsPerUser, agents/it/api/stream-slots.ts):
 * the one past the bound is refused with 429 and the API's `{code, message}`; a stream that ends
 * gives its slot back at once, whether its client closed it or a reload of the users cut it; one
 * user's streams leave another's bound alone; a user is its name, so its token and its password
 * count together. And the ways a client might keep slots it no longer uses: a connection closed
 * while its stream request was still being authenticated, and stream requests pipelined on one
 * connection that then closes. Each must give its slot back, or a user would lock itself (and,
 * through MAX_STREAMS, everyone) out of streams until the agent restarts.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { waitFor } from '../../../support/wait.ts';
import { resolvedUser, startLoneApi } from './api-alone.ts';
import { basicAuth, openStream, request, type OpenStream } from './api-plant.ts';

const LIMIT = 3;
const PASSWORD = 'ada lovelace 1815';

/** Opens `count` streams of `url` with `headers`, each answered 200; closed after the test. */
async function openStreams(
  t: TestContext,
  url: string,
  headers: Record<string, string>,
  count: number,
): Promise<OpenStream[]> {
  const streams: OpenStream[] = [];
  t.after(() => streams.forEach((stream) => stream.close()));
  for (let index = 0; index < count; index++) {
    const stream = await openStream(url, headers);
    streams.push(stream);
    assert.equal(stream.status, 200, `stream ${index + 1} of ${count}`);
  }
  return streams;
}

/** A stream request refused: its status and body (a refusal ends, so the whole answer is read). */
async function refusal(url: string, headers: Record<string, string>) {
  const answer = await request(url, { headers });
  return { status: answer.status, body: answer.json() };
}

/** Until a stream of `url` is served again (each try closed at once), within `boundMs`. */
function servedAgain(url: string, headers: Record<string, string>, what: string, boundMs: number) {
  return waitFor(
    async () => {
      const stream = await openStream(url, headers);
      stream.close();
      return stream.status === 200;
    },
    what,
    boundMs,
    20,
  );
}

/** The API with one read user of a token, `maxStreamsPerUser` `limit`: its stream URL and header. */
async function tokenUser(t: TestContext, name: string, limit: number) {
  const lone = await startLoneApi(t, async ({ addUser }) => [await addUser(name, 'read', { token: true })], {
    maxStreamsPerUser: limit,
  });
  const file = `${lone.dir}/${name}.token`;
  const token = (await readFile(file, 'utf8')).trim();
  return {
    lone,
    file,
    headers: { authorization: `Bearer ${token}` },
    url: `${lone.api.url}api/v1/stream?filter=%23`,
  };
}

/** A stream request as bytes, with `headers`, for a socket of the test's own. */
function streamRequest(headers: Record<string, string>): string {
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return `GET /api/v1/stream?filter=%23 HTTP/1.1\r\nhost: 127.0.0.1\r\n${lines.join('')}\r\n`;
}

describe('agents/it/api - live streams per user', () => {
  it(`refuses a user's stream past ${LIMIT} with 429; a closed one gives its slot back at once`, async (t) => {
    const { headers, url } = await tokenUser(t, 'ben', LIMIT);
    const streams = await openStreams(t, url, headers, LIMIT);
    const refused = await refusal(url, headers);
    assert.equal(refused.status, 429);
    assert.equal(refused.body.code, 'AGENT_ERR_API_USER_STREAMS');
    assert.match(String(refused.body.message), /user ben holds 3 live streams.*it\.api\.maxStreamsPerUser/);
    // Refused while all are open; and a request without credentials never reaches the count.
    assert.equal((await refusal(url, headers)).status, 429);
    assert.equal((await refusal(url, {})).status, 401);

    // The server learns of the close when it reads the connection's end, which may come a turn
    // of its loop after the next request: the slot is back then, in milliseconds (2 s is the bound).
    streams[0]!.close();
    const next = await waitFor(
      async () => {
        const stream = await openStream(url, headers);
        if (stream.status === 200) return stream;
        stream.close();
        return undefined;
      },
      'a new stream after one closed',
      2_000,
      0,
    );
    t.after(() => next.close());
    assert.equal((await refusal(url, headers)).status, 429, 'and the bound holds again');
  });

  it("one user's streams leave another's alone; a user's token and password count together", async (t) => {
    const lone = await startLoneApi(
      t,
      async ({ addUser }) => [
        await addUser('ada', 'write', { password: PASSWORD, token: true }),
        await addUser('ben', 'read', { token: true }),
      ],
      { maxStreamsPerUser: LIMIT },
    );
    const token = async (name: string) => ({
      authorization: `Bearer ${(await readFile(`${lone.dir}/${name}.token`, 'utf8')).trim()}`,
    });
    const url = `${lone.api.url}api/v1/stream?filter=%23`;
    // ada signed in twice, as a program with her token and as a person with her password.
    await openStreams(t, url, await token('ada'), LIMIT - 1);
    await openStreams(t, url, basicAuth('ada', PASSWORD), 1);
    assert.equal((await refusal(url, basicAuth('ada', PASSWORD))).status, 429, 'her password');
    assert.equal((await refusal(url, await token('ada'))).status, 429, 'her token');
    // ben holds his whole bound beside hers.
    await openStreams(t, url, await token('ben'), LIMIT);
    assert.equal((await refusal(url, await token('ben'))).status, 429);
  });

  it('a reload of the users that cuts streams gives their slots back', async (t) => {
    const { lone, file, headers, url } = await tokenUser(t, 'scada', LIMIT);
    const streams = await openStreams(t, url, headers, LIMIT);
    // The token leaked: replaced, and the streams opened with it are cut.
    const replaced = '5ca0a'.repeat(13);
    await writeFile(file, `${replaced}\n`, { mode: 0o600 });
    await lone.api.reloadUsers([resolvedUser({ name: 'scada', role: 'read', tokenFile: file }, 0)]);
    await Promise.all(streams.map((stream) => stream.ended));
    await openStreams(t, url, { authorization: `Bearer ${replaced}` }, LIMIT);
  });

  it('a connection closed while its stream request is authenticated gives the slot back', async (t) => {
    const lone = await startLoneApi(
      t,
      async ({ addUser }) => [await addUser('ada', 'read', { password: PASSWORD })],
      { maxStreamsPerUser: 1 },
    );
    const url = `${lone.api.url}api/v1/stream?filter=%23`;
    // The first checks of a password are scrypt's, two at a time (auth.ts): two clients gone
    // before theirs end, and so before their streams would begin. The check of the request that
    // follows waits for one of theirs, so their handlers have run by the time it is answered.
    for (let client = 0; client < 2; client++) {
      const socket = connect(lone.api.port, '127.0.0.1');
      t.after(() => socket.destroy());
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.end(streamRequest(basicAuth('ada', PASSWORD)));
      socket.destroy();
    }
    await servedAgain(url, basicAuth('ada', PASSWORD), "ada's one stream", 5_000);
  });

  it('stream requests pipelined on a connection that closes give every slot back', async (t) => {
    const { lone, headers, url } = await tokenUser(t, 'ben', LIMIT);
    // HTTP/1.1 pipelining (RFC 9112 section 9.3.2): the requests after the first wait behind its
    // answer, a stream that never ends, and each holds a slot meanwhile.
    const socket = connect(lone.api.port, '127.0.0.1');
    t.after(() => socket.destroy());
    socket.write(streamRequest(headers).repeat(LIMIT + 2));
    await new Promise((resolve) => socket.once('data', resolve));
    await waitFor(
      async () => (await refusal(url, headers)).status === 429,
      'the pipelined requests to hold every slot',
      5_000,
      20,
    );
    socket.destroy();
    await servedAgain(url, headers, 'a stream served again', 5_000);
    await openStreams(t, url, headers, LIMIT);
  });
});
