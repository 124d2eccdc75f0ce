#!/usr/bin/env node
// Strict chat servers (npm `ws`) for herd's tests of join steps, automatic replies and refused
// upgrades. Rooms come from the path /conv/<room>; every text frame of a joined client goes to
// the other members of its room.
//
//   node strict_peer.js --mode greet|textping|origin [--port 0] [--report FILE]
//                       [--after-ms 150] [--ping-interval-ms 100] [--origin URL] [--exit-on-stdin-eof]
//
// greet:    sends {"type":"welcome"} --after-ms after the upgrade; a client that sends anything
//           before it is closed with 4000 "sent before welcome". The first frame after it must be
//           {"type":"join"}, answered with {"type":"joined"}; anything else is closed with 4001.
// textping: sends the text frame {"type":"ping"} every --ping-interval-ms; a client that has not
//           answered {"type":"pong"} by the next ping is closed with 4002 "missed pong". A text
//           frame PING is answered PONG (herd's --ping-frame keep-alives).
// origin:   refuses upgrades whose Origin header is not --origin with HTTP 403 and the body
//           "origin not allowed"; accepted clients chat.
// Prints `LISTENING 127.0.0.1:PORT` once listening.
'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');
const peer = require('./peer_common');

const NAME = 'strict_peer.js';
const a = peer.parseArgs(NAME, {
  mode: null, port: 0, report: null, after_ms: 150, ping_interval_ms: 100, origin: 'http://herd.test',
  exit_on_stdin_eof: false,
});
if (!['greet', 'textping', 'origin'].includes(a.mode)) peer.die(NAME, '--mode greet|textping|origin');

const c = {
  connections: 0, rejected: 0, closed_early: 0, closed_bad_join: 0, joins: 0, relayed: 0,
  pings_sent: 0, pongs_received: 0, closed_missed_pong: 0, ping_frames_received: 0, pong_frames_sent: 0,
};
const rooms = new Map();
const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const wss = new WebSocketServer({
  server,
  verifyClient: a.mode === 'origin'
    ? (info, cb) => {
      if (info.origin === a.origin) return cb(true);
      c.rejected++;
      cb(false, 403, 'origin not allowed');
    }
    : undefined,
});

function enter(ws, room) {
  if (!rooms.has(room)) rooms.set(room, new Set());
  rooms.get(room).add(ws);
  ws.room = room;
}

function relay(ws, data) {
  c.relayed++;
  for (const other of rooms.get(ws.room) || []) {
    if (other !== ws && other.readyState === other.OPEN) other.send(data);
  }
}

wss.on('connection', (ws, req) => {
  c.connections++;
  const m = /^\/conv\/([^/?]+)/.exec(req.url);
  const room = m ? m[1] : '';
  ws.on('close', () => { if (ws.room) rooms.get(ws.room).delete(ws); clearInterval(ws.pinger); clearTimeout(ws.greeter); });
  if (a.mode === 'greet') {
    let state = 'before-welcome';
    ws.greeter = setTimeout(() => { state = 'welcomed'; ws.send('{"type":"welcome"}'); }, a.after_ms);
    ws.on('message', (data) => {
      const text = data.toString();
      if (state === 'before-welcome') { c.closed_early++; ws.close(4000, 'sent before welcome'); return; }
      if (state === 'welcomed') {
        if (text !== '{"type":"join"}') { c.closed_bad_join++; ws.close(4001, 'join first'); return; }
        state = 'joined';
        c.joins++;
        enter(ws, room);
        ws.send('{"type":"joined"}');
        return;
      }
      relay(ws, text);
    });
    return;
  }
  enter(ws, room);
  if (a.mode === 'textping') {
    ws.answered = true;
    ws.pinger = setInterval(() => {
      // A connection already closing is neither pinged nor counted again.
      if (ws.readyState !== ws.OPEN) { clearInterval(ws.pinger); return; }
      if (!ws.answered) { c.closed_missed_pong++; ws.close(4002, 'missed pong'); return; }
      ws.answered = false;
      c.pings_sent++;
      ws.send('{"type":"ping"}');
    }, a.ping_interval_ms);
  }
  ws.on('message', (data) => {
    const text = data.toString();
    if (a.mode === 'textping' && text === '{"type":"pong"}') { c.pongs_received++; ws.answered = true; return; }
    if (text === 'PING') { c.ping_frames_received++; c.pong_frames_sent++; ws.send('PONG'); return; }
    relay(ws, text);
  });
});

peer.onStop(() => {
  peer.writeReport(NAME, a.report, () => JSON.stringify({ impl: NAME, mode: a.mode, counters: c }));
  for (const ws of wss.clients) ws.terminate();
  server.close();
  setTimeout(() => process.exit(0), 50).unref();
}, a.exit_on_stdin_eof);

peer.listen(NAME, server, a.port);
