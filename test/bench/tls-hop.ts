/**
 * One hop of the Node floor in `npm run bench:tunnel`: a process that accepts connections and
 * pipes each to the next hop, with Node's own TLS and `stream.pipe` and nothing else (no
 * WebSocket, no frames, no credit, no policy). Three of these in a row have the tunnel's topology
 * (three processes, two mutually authenticated TLS 1.3 links), so what they reach is the most any
 * Node implementation of that topology can reach on this machine.
 *
 *   node --import tsx tls-hop.ts <in> <out> <dir> <listen port>:<next port>...
 *
 * `in` and `out` are `tcp` or `tls`; `dir` holds ca.pem, server.pem and client.pem (certificate
 * and key, as for stunnel). The hop prints `ready` once it listens on every port.
 */
import { readFileSync } from 'node:fs';
import { connect as connectTcp, createServer as createTcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as connectTls, createServer as createTlsServer } from 'node:tls';

const [inSide, outSide, dir, ...routes] = process.argv.slice(2) as [string, string, string, ...string[]];
const ca = readFileSync(join(dir, 'ca.pem'));
const server = readFileSync(join(dir, 'server.pem'));
const client = readFileSync(join(dir, 'client.pem'));

function connectNext(port: number): Socket {
  const address = { host: '127.0.0.1', port, allowHalfOpen: true };
  if (outSide === 'tcp') return connectTcp(address);
  return connectTls({
    ...address,
    ca,
    cert: client,
    key: client,
    servername: 'localhost',
    minVersion: 'TLSv1.3',
  });
}

function forward(socket: Socket, nextPort: number): void {
  socket.setNoDelay(true);
  const onward = connectNext(nextPort);
  onward.setNoDelay(true);
  socket.pipe(onward);
  onward.pipe(socket);
  socket.on('error', () => onward.destroy());
  onward.on('error', () => socket.destroy());
}

let listening = 0;
for (const route of routes) {
  const [listenPort, nextPort] = route.split(':').map(Number) as [number, number];
  const onConnection = (socket: Socket) => forward(socket, nextPort);
  const listener =
    inSide === 'tcp'
      ? createTcpServer({ allowHalfOpen: true }, onConnection)
      : createTlsServer(
          {
            allowHalfOpen: true,
            ca,
            cert: server,
            key: server,
            requestCert: true,
            rejectUnauthorized: true,
            minVersion: 'TLSv1.3',
          },
          onConnection,
        );
  listener.listen(listenPort, '127.0.0.1', () => {
    if (++listening === routes.length) console.log('ready');
  });
}
