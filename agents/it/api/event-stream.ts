/**
 * The live stream: server-sent events (WHATWG HTML, section 9.2), one event per point or gap, each
 * with its cursor as the event id. A client that reconnects sends the last id it got
 * (Last-Event-ID, or `since=`), and the stream first sends what it missed from the store's history,
 * then live entries: the follower is registered and the history read in the same tick, so nothing
 * falls between them and nothing comes twice.
 *
 * A client that reads slower than entries arrive is not buffered for without bound: past
 * MAX_QUEUED_ENTRIES the stream is cut, and the client's reconnect resumes from its last id. A
 * resume that missed more than that gets that many, then the stream ends and the reconnect
 * fetches the next part: catching up is paged, never one unbounded read.
 */
import type { ServerResponse } from 'node:http';
import type { RecentEntry, RecentSink } from '../sinks/recent-sink.ts';
import { topicMatches } from '../../../relay/protocol/topics.ts';
import { topicOf } from '../sinks/entry-checks.ts';
import { formatCursor } from './cursor.ts';
import { historyEntryBody } from './entry-bodies.ts';
import { API_HEADERS } from './response-headers.ts';
import { MAX_HISTORY_LIMIT } from './schemas.ts';

/** Entries waiting for one slow client before its stream is ended (it resumes from its cursor). */
export const MAX_QUEUED_ENTRIES = 50_000;
/** A comment this often keeps proxies and the browser from closing an idle stream. */
export const KEEPALIVE_MS = 15_000;
/** How long a browser waits before it reconnects a stream that ended. */
const RETRY_MS = 2_000;

export interface StreamRequest {
  readonly filter: string;
  /** Resume after this id; undefined: live from now. */
  readonly afterId: number | undefined;
}

/**
 * Streams into `response` until the client goes away; resolves then, which is when its slot is
 * given back (routes.ts). Gone is the connection closing as much as the response: a response
 * that never began (a connection closed while the request was authenticated, or a request
 * pipelined behind another stream on a connection that closed) never emits `close` of its own,
 * and waiting for it would hold the slot until the agent restarts.
 */
export function streamEntries(
  response: ServerResponse,
  store: RecentSink,
  request: StreamRequest,
): Promise<void> {
  const connection = response.req.socket;
  if (connection.destroyed) return Promise.resolve();
  const { filter } = request;
  const queue: RecentEntry[] = [];
  let writing = false;
  let ended = false;
  let settle = () => {};
  const finished = new Promise<void>((resolve) => (settle = resolve));

  /** Set when the stream ends once the queue is sent (a resume that missed too much to queue). */
  let endWhenSent = false;
  const stop = () => {
    if (ended) return;
    ended = true;
    unfollow();
    clearInterval(keepalive);
  };
  const pump = async () => {
    if (writing) return;
    writing = true;
    while (!ended && queue.length > 0) {
      const batch = queue.splice(0, 256);
      const text = batch.map((held) => eventText(store, held)).join('');
      if (!response.write(text)) await drained(response);
    }
    writing = false;
    if (endWhenSent && !ended) {
      stop();
      response.end();
    }
  };
  const enqueue = (entries: readonly RecentEntry[]) => {
    for (const held of entries) {
      if (topicMatches(filter, topicOf(held.entry))) queue.push(held);
    }
    if (queue.length > MAX_QUEUED_ENTRIES) {
      // The client is too slow: its reconnect resumes from the last id it got. Cut, not ended:
      // an end waits for a client that does not read, and would hold its slot for ever.
      stop();
      response.destroy();
      return;
    }
    void pump();
  };

  // Registered first, then the history read, in one tick: nothing between them, nothing twice.
  const unfollow = store.follow(enqueue);
  response.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    // Written past Fastify (the reply is hijacked): the headers every other answer gets.
    ...API_HEADERS,
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
  });
  const startId = store.latestId;
  let preface = `retry: ${RETRY_MS}\n\n`;
  if (request.afterId === undefined) {
    // The starting position, as an id the browser remembers for its reconnect.
    preface += `id: ${formatCursor(store, startId)}\nevent: hello\ndata: ${JSON.stringify({ cursor: formatCursor(store, startId) })}\n\n`;
  } else {
    let afterId = request.afterId;
    let truncated = false;
    for (;;) {
      const room = MAX_QUEUED_ENTRIES - queue.length;
      const page = store.history({ filter, afterId, limit: Math.min(MAX_HISTORY_LIMIT, room) });
      truncated ||= page.truncated;
      for (const held of page.entries) queue.push(held);
      const last = page.entries.at(-1);
      if (!page.more || last === undefined) break;
      afterId = last.id;
      if (page.entries.length === room) {
        // More is held than one stream queues: this part, then the reconnect asks for the next.
        endWhenSent = true;
        break;
      }
    }
    if (truncated)
      preface += `event: truncated\ndata: ${JSON.stringify({ since: formatCursor(store, request.afterId) })}\n\n`;
  }
  response.write(preface);
  const keepalive = setInterval(() => response.write(': keepalive\n\n'), KEEPALIVE_MS);
  keepalive.unref();
  const gone = () => {
    response.off('close', gone);
    connection.off('close', gone);
    stop();
    settle();
  };
  // Both left again when the stream ends: a connection may carry many streams, one after another.
  response.once('close', gone);
  connection.once('close', gone);
  if (endWhenSent) unfollow();
  void pump();
  return finished;
}

/** Until `response` can take more, or is gone; both listeners leave again (a stream blocks often). */
function drained(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      response.off('drain', done);
      response.off('close', done);
      resolve();
    };
    response.once('drain', done);
    response.once('close', done);
  });
}

function eventText(store: RecentSink, held: RecentEntry): string {
  const body = historyEntryBody(store, held);
  return `id: ${body.cursor}\nevent: ${body.kind}\ndata: ${JSON.stringify(body)}\n\n`;
}
