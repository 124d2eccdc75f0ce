#!/usr/bin/env node
// A Socket.IO 4.8 chat server (npm `socket.io`) for herd's tests.
//
//   node sio_peer.js [--port 0] [--report FILE] [--mode to|io] [--ping-interval-ms 25000]
//                    [--ping-timeout-ms 20000] [--exit-on-stdin-eof]
//
// A client emits `join` with a room name (an ack callback, if given, is called once joined),
// as often as it has rooms, then `message` events: `message(body)` goes to the room joined last,
// `message(body, room)` to that room (a room the socket has not joined is refused and counted
// in `messages_not_member`). Each goes with `socket.to(room)` (mode `to`: not back to its
// sender) or `io.to(room)` (mode `io`: to the sender too); `deliveries` counts the sockets it
// goes to. The report counts
// connections, joins, messages, Engine.IO pings sent and pongs received, messages emitted before
// a join, and disconnect reasons. Prints `LISTENING 127.0.0.1:PORT` once listening.
'use strict';

const http = require('http');
const { Server } = require('socket.io');
const peer = require('./peer_common');

const NAME = 'sio_peer.js';
const a = peer.parseArgs(NAME, {
  port: 0, report: null, mode: 'to', ping_interval_ms: 25000, ping_timeout_ms: 20000, exit_on_stdin_eof: false,
});
if (!['to', 'io'].includes(a.mode)) peer.die(NAME, '--mode to|io');

const c = {
  connections: 0, joins: 0, messages_received: 0, messages_before_join: 0, messages_not_member: 0,
  deliveries: 0,
  pings_sent: 0, pongs_received: 0, disconnect_reasons: {},
};
const server = http.createServer();
const io = new Server(server, {
  transports: ['websocket'], serveClient: false,
  pingInterval: a.ping_interval_ms, pingTimeout: a.ping_timeout_ms,
});

io.on('connection', (socket) => {
  c.connections++;
  socket.conn.on('packetCreate', (p) => { if (p.type === 'ping') c.pings_sent++; });
  socket.conn.on('packet', (p) => { if (p.type === 'pong') c.pongs_received++; });
  socket.on('join', (room, ack) => {
    socket.join(String(room));
    socket.data.room = String(room);
    c.joins++;
    if (typeof ack === 'function') ack('joined');
  });
  socket.on('message', (body, to) => {
    const room = to === undefined ? socket.data.room : String(to);
    if (!room) { c.messages_before_join++; return; }
    if (!socket.rooms.has(room)) { c.messages_not_member++; return; }
    c.messages_received++;
    // Sockets the message goes to: the room's, less the sender's own with `socket.to`.
    const size = io.sockets.adapter.rooms.get(room)?.size || 0;
    c.deliveries += a.mode === 'io' ? size : size - 1;
    (a.mode === 'io' ? io.to(room) : socket.to(room)).emit('message', body);
  });
  socket.on('disconnect', (reason) => {
    c.disconnect_reasons[reason] = (c.disconnect_reasons[reason] || 0) + 1;
  });
});

peer.onStop(() => {
  peer.writeReport(NAME, a.report, () => {
    const version = require('socket.io/package.json').version;
    return JSON.stringify({ impl: `socket.io ${version}`, mode: a.mode, counters: c });
  });
  io.close();
  setTimeout(() => process.exit(0), 50).unref();
}, a.exit_on_stdin_eof);

peer.listen(NAME, server, a.port);
