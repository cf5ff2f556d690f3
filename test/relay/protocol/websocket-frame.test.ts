/**
 * The WebSocket frame header the relay and the agents write beside ws (relay/protocol/websocket-frame.ts):
 * the bytes RFC 6455 section 5.2 prescribes, and a real ws server reading a client's zero-masked
 * frames, header and pieces written straight to the socket, as the messages they carry.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { binaryFrameHeader } from '../../../relay/protocol/websocket-frame.ts';
import { waitFor } from '../../support/wait.ts';

describe('relay/protocol websocket frame header', () => {
  const cases: readonly [length: number, unmasked: readonly number[]][] = [
    [0, [0x82, 0]],
    [125, [0x82, 125]],
    [126, [0x82, 126, 0, 126]],
    [0xffff, [0x82, 126, 0xff, 0xff]],
    [0x1_0000, [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]],
  ];
  for (const [length, unmasked] of cases) {
    it(`writes the header of a ${length}-byte payload, unmasked and with a zero mask`, () => {
      assert.deepEqual([...binaryFrameHeader(length)], unmasked);
      const masked = [unmasked[0], (unmasked[1] ?? 0) | 0x80, ...unmasked.slice(2), 0, 0, 0, 0];
      assert.deepEqual([...binaryFrameHeader(length, true)], masked);
    });
  }

  const http = createServer();
  const webSockets = new WebSocketServer({ server: http });
  after(async () => {
    for (const client of webSockets.clients) client.terminate();
    webSockets.close();
    http.close();
    await once(http, 'close');
  });

  it('is read by a ws server as the message its pieces make, for every length class', async () => {
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    const received: Buffer[] = [];
    webSockets.on('connection', (socket: WebSocket) =>
      socket.on('message', (data: Buffer) => received.push(data)),
    );
    const { port } = http.address() as AddressInfo;
    // The upgrade by hand, so the frames after it are exactly the bytes written here.
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(
      'GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    const [answer] = (await once(socket, 'data')) as [Buffer];
    assert.match(answer.toString(), /^HTTP\/1\.1 101 /);
    const messages = cases.map(([length]) => [Buffer.of(length & 0xff), Buffer.alloc(length, 0xa5)] as const);
    for (const [head, body] of messages) {
      socket.write(binaryFrameHeader(head.byteLength + body.byteLength, true));
      socket.write(head);
      socket.write(body);
    }
    await waitFor(() => received.length === messages.length, 'every message read', 10_000);
    assert.deepEqual(
      received,
      messages.map(([head, body]) => Buffer.concat([head, body])),
    );
    socket.destroy();
  });
});
