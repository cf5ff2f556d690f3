/**
 * The relay's own WebSocket message writer (relay/server/message-writer.ts): what a real ws client
 * receives when messages go out in pieces, coalesced, next to ws's own frames on the same socket.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { BULK_SOCKET_BYTES, COALESCE_BYTES, MessageWriter } from '../../../relay/server/message-writer.ts';
import { waitFor } from '../../support/wait.ts';

interface Pair {
  readonly server: WebSocket;
  readonly socket: Socket;
  readonly writer: MessageWriter;
  readonly client: WebSocket;
  readonly received: Buffer[];
}

describe('relay/server message writer', () => {
  let http: Server;
  let webSockets: WebSocketServer;
  const open: WebSocket[] = [];

  before(async () => {
    webSockets = new WebSocketServer({ noServer: true, clientTracking: false, perMessageDeflate: false });
    http = createServer();
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
  });
  after(async () => {
    for (const socket of open) socket.terminate();
    http.close();
    await once(http, 'close');
  });

  /** A ws client and, on the server side, a ws WebSocket on a plain TCP socket with a writer. */
  async function pair(): Promise<Pair> {
    const upgraded = new Promise<{ server: WebSocket; socket: Socket }>((resolve) => {
      http.once('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
        webSockets.handleUpgrade(request, socket, head, (server) => resolve({ server, socket }));
      });
    });
    const client = new WebSocket(`ws://127.0.0.1:${(http.address() as AddressInfo).port}/`);
    const received: Buffer[] = [];
    client.on('message', (data: Buffer) => received.push(data));
    await once(client, 'open');
    const { server, socket } = await upgraded;
    open.push(client, server);
    return { server, socket, writer: new MessageWriter(server, socket, 8 * 1024 * 1024), client, received };
  }

  it('delivers a message sent in pieces as one message, in order with the frames ws itself sends', async () => {
    const { server, writer, received } = await pair();
    const batch = Buffer.alloc(70_000, 7);
    writer.send([Uint8Array.of(1, 2), batch]);
    server.send(Uint8Array.of(9), { binary: true });
    writer.send(Uint8Array.of(3));
    writer.send([Uint8Array.of(4), Buffer.alloc(200, 5)]);
    await waitFor(() => received.length === 4, 'four messages', 5_000);
    assert.deepEqual(received[0], Buffer.concat([Uint8Array.of(1, 2), batch]));
    assert.deepEqual(received[1], Buffer.of(9));
    assert.deepEqual(received[2], Buffer.of(3));
    assert.deepEqual(received[3], Buffer.concat([Uint8Array.of(4), Buffer.alloc(200, 5)]));
  });

  it("counts what it holds back in ws's bufferedAmount, and sends it within the turn", async () => {
    const { server, writer, received } = await pair();
    const before = server.bufferedAmount;
    writer.send(Buffer.alloc(1_000, 1));
    writer.send(Buffer.alloc(1_000, 2));
    // Two 1,000-byte payloads behind 4-byte headers, held for the rest of the turn.
    assert.equal(server.bufferedAmount - before, 2 * 1_004);
    await waitFor(() => received.length === 2, 'two messages', 5_000);
    assert.equal(server.bufferedAmount, 0);
  });

  it(`lets a turn's writes go as soon as ${COALESCE_BYTES} bytes wait`, async () => {
    const { socket, writer } = await pair();
    let writes = 0;
    const write = socket._writev?.bind(socket);
    socket._writev = (chunks, callback) => {
      writes += 1;
      write!(chunks, callback);
    };
    writer.send(Buffer.alloc(COALESCE_BYTES / 2));
    assert.equal(writes, 0, 'held while under the bound');
    writer.send(Buffer.alloc(COALESCE_BYTES / 2));
    assert.equal(writes, 1, 'written at once at the bound');
  });

  it('keeps tunnel bulk in its lane: the socket holds at most its share, and other messages pass it', async () => {
    const { socket, writer, client, received } = await pair();
    // A reader that stops: the kernel's buffers fill, then the socket's own.
    (client as unknown as { _socket: Socket })._socket.pause();
    const chunk = Buffer.alloc(64 * 1024, 1);
    const messages = 256;
    for (let index = 0; index < messages; index++) writer.sendBulk([Uint8Array.of(0xb0), chunk]);
    await waitFor(() => writer.bulkBytes > 0 && socket.writableNeedDrain, 'the lane holding bulk back');
    assert.ok(
      socket.writableLength <= BULK_SOCKET_BYTES + chunk.byteLength + 16,
      `the socket holds ${socket.writableLength} bytes`,
    );
    const held = socket.writableLength;
    writer.send(Uint8Array.of(0xc0));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(socket.writableLength, held + 3, 'a control message goes into the socket at once');
    (client as unknown as { _socket: Socket })._socket.resume();
    await waitFor(() => received.length === messages + 1, 'every message', 20_000);
    const control = received.findIndex((message) => message[0] === 0xc0);
    assert.ok(control < messages, `the control message came after all the bulk (at ${control})`);
    assert.equal(writer.bulkBytes, 0);
  });

  it('writes nothing once ws has begun to close (no data frame after a close frame)', async () => {
    const { server, writer, client, received } = await pair();
    const closed = once(client, 'close');
    server.close(1000, 'bye');
    writer.send(Uint8Array.of(1));
    const [code] = (await closed) as [number];
    assert.equal(code, 1000);
    assert.equal(received.length, 0);
  });
});
