#!/usr/bin/env node
// Strict third-party WebSocket peer for herd's tests, built on npm `ws`.
//
//   node ws_peer.js --mode MODE [--port 0] [--report FILE] [options]
//
// Same command line, modes, LISTENING line and report format as ws_peer.py
// (see README.md). Binds 127.0.0.1 only. Upgrades are accepted only on
// /conv/<room> (query string allowed); other paths get HTTP 404.
'use strict';

const http = require('http');
const crypto = require('crypto');
const { WebSocketServer, WebSocket } = require('ws');
const WS_VERSION = require('ws/package.json').version;
const peer = require('./peer_common');

const MODES = [
  'chat', 'chat-echo', 'fragment', 'ping', 'close',
  'bigframe', 'badutf8', 'badaccept', 'subprotocol',
];
const ROOM_PATH = /^\/conv\/([^/]+)$/;
const BAD_UTF8_PAYLOAD = Buffer.from([
  ...Buffer.from('bad-utf8 '), 0xc3, 0x28, 0x20, 0xff, 0xfe,
]);
const BIGFRAME_FILL = 'Z';

function usage(msg) {
  if (msg) process.stderr.write(`ws_peer.js: ${msg}\n`);
  process.stderr.write(
    'usage: node ws_peer.js --mode {' + MODES.join(',') + '} [--port N] [--report FILE]\n' +
    '       [--after-ms 200] [--bytes 65536] [--fragments 3] [--fragment-split chars|bytes]\n' +
    '       [--ping-interval-ms 100] [--subprotocol chat.herd] [--max-size 1048576]\n' +
    '       [--compression none|deflate] [--close-timeout 2.0] [--exit-on-stdin-eof]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const a = {
    mode: null, port: 0, report: null, after_ms: 200, bytes: 65536, fragments: 3,
    fragment_split: 'chars', ping_interval_ms: 100, subprotocol: 'chat.herd',
    max_size: 1 << 20, compression: 'none', close_timeout: 2.0, exit_on_stdin_eof: false,
  };
  const flags = new Set(['exit_on_stdin_eof']);
  const ints = new Set(['port', 'after_ms', 'bytes', 'fragments', 'ping_interval_ms', 'max_size']);
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    if (arg === '-h' || arg === '--help') usage();
    if (!arg.startsWith('--')) usage(`unexpected argument ${arg}`);
    const flag = arg.slice(2).replace(/-/g, '_');
    if (flags.has(flag)) { a[flag] = true; continue; }
    let val;
    const eq = arg.indexOf('=');
    if (eq >= 0) { val = arg.slice(eq + 1); arg = arg.slice(0, eq); }
    else { val = argv[++i]; }
    const key = arg.slice(2).replace(/-/g, '_');
    if (!(key in a)) usage(`unknown option ${arg}`);
    if (val === undefined) usage(`${arg} needs a value`);
    if (ints.has(key)) {
      if (!/^\d+$/.test(val)) usage(`${arg} needs a non-negative integer`);
      a[key] = parseInt(val, 10);
    } else if (key === 'close_timeout') {
      a[key] = parseFloat(val);
    } else {
      a[key] = val;
    }
  }
  if (!MODES.includes(a.mode)) usage('--mode is required and must be one of the modes');
  if (!['chars', 'bytes'].includes(a.fragment_split)) usage('bad --fragment-split');
  if (!['none', 'deflate'].includes(a.compression)) usage('bad --compression');
  if (a.fragments < 2) usage('--fragments must be at least 2');
  return a;
}

const args = parseArgs(process.argv.slice(2));

// ---- statistics --------------------------------------------------------
const c = Object.create(null);
const inc = (k, n = 1) => { c[k] = (c[k] || 0) + n; };
const get = (k) => c[k] || 0;
const counters = {
  close_codes_received: {}, offered_subprotocols: {}, offered_extensions: {},
  rejections: {}, close_replies: {},
};
const bump = (obj, k) => { obj[k] = (obj[k] || 0) + 1; };
const roomStats = {};
const started = Date.now();
let boundPort = null;

function buildReport() {
  const r = {
    impl: 'node-ws',
    impl_version: WS_VERSION,
    mode: args.mode,
    port: boundPort,
    uptime_s: Math.round((Date.now() - started)) / 1000,
    connections_open: live.size,
  };
  for (const k of ['connections_opened', 'connections_closed', 'handshakes_rejected',
    'text_received', 'binary_received', 'bytes_received', 'deliveries', 'echoes',
    'client_pings_received']) r[k] = get(k);
  r.rejections = counters.rejections;
  r.close_codes_received = counters.close_codes_received;
  r.offered_subprotocols = counters.offered_subprotocols;
  r.offered_extensions = counters.offered_extensions;
  r.rooms = roomStats;
  switch (args.mode) {
    case 'fragment':
      Object.assign(r, {
        fragments_per_message: args.fragments, fragment_split: args.fragment_split,
        fragmented_messages_sent: get('fragmented_messages_sent'),
      });
      break;
    case 'ping':
      Object.assign(r, {
        ping_interval_ms: args.ping_interval_ms, pings_sent: get('pings_sent'),
        pongs_received: get('pongs_received'), pongs_matched: get('pongs_matched'),
        pongs_unmatched: get('pongs_unmatched'),
      });
      break;
    case 'close':
      Object.assign(r, {
        close_after_ms: args.after_ms, close_code_sent: 4001, close_reason_sent: 'herd-test',
        closes_sent: get('closes_sent'), close_echoed: get('close_echoed'),
        close_reason_echoed: get('close_reason_echoed'), close_not_echoed: get('close_not_echoed'),
        close_replies: counters.close_replies,
      });
      break;
    case 'bigframe':
      Object.assign(r, { bigframe_bytes: args.bytes, bigframes_sent: get('bigframes_sent') });
      break;
    case 'badutf8':
      Object.assign(r, {
        badutf8_sent: get('badutf8_sent'), badutf8_payload_hex: BAD_UTF8_PAYLOAD.toString('hex'),
        closed_with_1007: counters.close_codes_received['1007'] || 0,
      });
      break;
    case 'badaccept':
      Object.assign(r, {
        bad_accepts_sent: get('bad_accepts_sent'),
        clients_dropped_without_frames: get('clients_dropped_without_frames'),
        clients_sent_frames_after_bad_accept: get('clients_sent_frames_after_bad_accept'),
        clients_still_open_at_shutdown: get('clients_still_open_at_shutdown'),
      });
      break;
    case 'subprotocol':
      Object.assign(r, {
        subprotocol: args.subprotocol, subprotocol_negotiated: get('subprotocol_negotiated'),
        subprotocol_rejected: get('subprotocol_rejected'),
      });
      break;
    default:
  }
  return r;
}

function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = sortKeys(v[k]);
    return o;
  }
  return v;
}

function writeReport() {
  peer.writeReport('ws_peer.js', args.report, () => JSON.stringify(sortKeys(buildReport()), null, 2) + '\n');
}

// ---- server ------------------------------------------------------------
const rooms = new Map(); // room -> Set<WebSocket>
const live = new Set();
let shuttingDown = false;
let pingSeq = 0;

function rawReject(socket, status, text, body) {
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  }
  socket.destroy();
}

function headerList(value) {
  if (value === undefined) return [];
  return String(value).split(',').map((s) => s.trim()).filter(Boolean);
}

const httpServer = http.createServer((req, res) => {
  res.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket' });
  res.end('herd peer: WebSocket upgrade required\n');
});

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: args.compression === 'deflate',
  maxPayload: args.max_size, // 0 = unlimited
  clientTracking: false,
  handleProtocols: args.mode === 'subprotocol'
    ? (protocols) => (protocols.has(args.subprotocol) ? args.subprotocol : false)
    : () => false,
});

if (args.mode === 'badaccept') {
  // Rewrite the computed accept header: well-formed base64 SHA-1, wrong GUID.
  wss.on('headers', (headers, req) => {
    const key = req.headers['sec-websocket-key'];
    const wrong = crypto.createHash('sha1')
      .update(key + '00000000-0000-0000-0000-000000000000').digest('base64');
    const i = headers.findIndex((h) => /^sec-websocket-accept:/i.test(h));
    headers[i] = `Sec-WebSocket-Accept: ${wrong}`;
    req.badAccept = true;
    inc('bad_accepts_sent');
  });
}

httpServer.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  const url = new URL(req.url, 'http://127.0.0.1');
  const offered = headerList(req.headers['sec-websocket-protocol']);
  bump(counters.offered_subprotocols, offered.join(', '));
  if (req.headers['sec-websocket-extensions'] !== undefined) {
    bump(counters.offered_extensions, req.headers['sec-websocket-extensions']);
  }
  const m = ROOM_PATH.exec(url.pathname);
  if (!m) {
    inc('handshakes_rejected'); bump(counters.rejections, '404');
    rawReject(socket, 404, 'Not Found', 'herd peer: path must be /conv/<room>\n');
    return;
  }
  if (args.mode === 'subprotocol' && !offered.includes(args.subprotocol)) {
    inc('handshakes_rejected'); bump(counters.rejections, '400'); inc('subprotocol_rejected');
    rawReject(socket, 400, 'Bad Request', `herd peer: subprotocol '${args.subprotocol}' required\n`);
    return;
  }
  if (shuttingDown) {
    rawReject(socket, 503, 'Service Unavailable', 'herd peer: shutting down\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.room = m[1];
    ws.user = url.searchParams.get('user');
    ws.badAccept = !!req.badAccept;
    onConnection(ws);
  });
});

function fragmentsOf(data, isBinary) {
  const k = args.fragments;
  let units;
  if (isBinary || args.fragment_split === 'bytes') {
    units = data; // Buffer: cut at byte offsets (text may be cut inside a code point)
  } else {
    units = Array.from(data.toString('utf8')); // code points
  }
  const n = units.length;
  const parts = [];
  for (let i = 0; i < k; i++) {
    const a = Math.floor((n * i) / k);
    const b = Math.floor((n * (i + 1)) / k);
    parts.push(Buffer.isBuffer(units) ? units.subarray(a, b) : units.slice(a, b).join(''));
  }
  return parts;
}

function relay(ws, members, data, isBinary) {
  if (isBinary) inc('binary_received'); else inc('text_received');
  inc('bytes_received', data.length);
  const targets = [];
  for (const m of members) if (m !== ws) targets.push(m);
  if (args.mode === 'chat-echo') { targets.push(ws); inc('echoes'); }
  for (const t of targets) {
    if (t.readyState !== WebSocket.OPEN) continue;
    if (args.mode === 'fragment') {
      const parts = fragmentsOf(data, isBinary);
      // ws queues these synchronously, so no other frame can interleave.
      parts.forEach((p, i) => t.send(p, { binary: isBinary, fin: i === parts.length - 1 }));
      inc('fragmented_messages_sent');
    } else {
      t.send(data, { binary: isBinary });
    }
    inc('deliveries');
  }
}

function onConnection(ws) {
  inc('connections_opened');
  live.add(ws);
  let members = rooms.get(ws.room);
  if (!members) { members = new Set(); rooms.set(ws.room, members); }
  members.add(ws);
  const info = roomStats[ws.room] || (roomStats[ws.room] = { joined: 0, max_members: 0 });
  info.joined += 1;
  info.max_members = Math.max(info.max_members, members.size);
  ws.dataFrames = 0;
  ws.pingsOutstanding = new Set();
  if (args.mode === 'subprotocol' && ws.protocol === args.subprotocol) inc('subprotocol_negotiated');

  ws.on('error', () => {}); // protocol errors end in a 'close' event with the code sent
  ws.on('message', (data, isBinary) => { ws.dataFrames += 1; relay(ws, members, data, isBinary); });
  ws.on('ping', () => inc('client_pings_received'));
  ws.on('pong', (data) => {
    inc('pongs_received');
    const k = data.toString('latin1');
    if (ws.pingsOutstanding.delete(k)) inc('pongs_matched'); else inc('pongs_unmatched');
  });
  let closeTimer = null;
  let closer = null;
  ws.on('close', (code, reason) => {
    clearTimeout(closer); clearTimeout(closeTimer);
    members.delete(ws);
    if (members.size === 0 && rooms.get(ws.room) === members) rooms.delete(ws.room);
    live.delete(ws);
    inc('connections_closed');
    // ws reports 1006 when no close frame arrived (1006 is never valid on the wire).
    const key = code === 1006 ? 'none' : String(code);
    bump(counters.close_codes_received, key);
    if (ws.serverClosedFirst) {
      bump(counters.close_replies, key);
      if (code === 4001) {
        inc('close_echoed');
        if (reason.toString() === 'herd-test') inc('close_reason_echoed');
      } else {
        inc('close_not_echoed');
      }
    }
    if (ws.badAccept) {
      if (ws.closedByShutdown) inc('clients_still_open_at_shutdown');
      else if (key !== 'none' || ws.dataFrames > 0) inc('clients_sent_frames_after_bad_accept');
      else inc('clients_dropped_without_frames');
    }
    if (shuttingDown && live.size === 0) finishShutdown();
  });
  // Bound every closing handshake this server starts.
  ws.closeBounded = (code, reason) => {
    ws.close(code, reason);
    closeTimer = setTimeout(() => ws.terminate(), args.close_timeout * 1000);
  };

  if (args.mode === 'bigframe') {
    ws.send(BIGFRAME_FILL.repeat(args.bytes), { binary: false });
    inc('bigframes_sent');
  } else if (args.mode === 'badutf8') {
    // ws does not validate outgoing text: a correctly framed text frame with invalid UTF-8.
    ws.send(BAD_UTF8_PAYLOAD, { binary: false });
    inc('badutf8_sent');
  } else if (args.mode === 'close') {
    closer = setTimeout(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      inc('closes_sent');
      ws.serverClosedFirst = true;
      ws.closeBounded(4001, 'herd-test');
    }, args.after_ms);
  }
}

let pingTimer = null;
if (args.mode === 'ping') {
  pingTimer = setInterval(() => {
    for (const ws of live) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      pingSeq += 1;
      const payload = `ping-${pingSeq}`;
      ws.pingsOutstanding.add(payload);
      ws.ping(Buffer.from(payload, 'latin1'));
      inc('pings_sent');
    }
  }, args.ping_interval_ms);
}

let finished = false;
function finishShutdown() {
  if (finished) return;
  finished = true;
  writeReport();
  process.exit(0);
}

function shutdown() {
  if (shuttingDown) return;
  shuttingDown = true;
  if (pingTimer) clearInterval(pingTimer);
  httpServer.close();
  for (const ws of live) {
    ws.closedByShutdown = true;
    if (ws.readyState === WebSocket.OPEN) ws.closeBounded(1001, '');
    else if (ws.readyState !== WebSocket.CLOSING) ws.terminate();
  }
  if (live.size === 0) finishShutdown();
  // Backstop: never hang on shutdown.
  setTimeout(finishShutdown, args.close_timeout * 1000 + 1000).unref();
}

peer.onStop(shutdown, args.exit_on_stdin_eof);
process.on('SIGUSR1', writeReport);

peer.listen('ws_peer.js', httpServer, args.port, (port) => { boundPort = port; });
