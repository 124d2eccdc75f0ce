#!/usr/bin/env python3
"""Strict third-party WebSocket peer for herd's tests, built on PyPI `websockets`.

    python3 ws_peer.py --mode MODE [--port 0] [--report FILE] [options]

Binds 127.0.0.1:PORT (0 = pick a free port), prints exactly one line
`LISTENING 127.0.0.1:PORT` on stdout once it accepts connections, and serves
until SIGTERM/SIGINT (or, with --exit-on-stdin-eof, until stdin is closed),
then exits 0.  With --report FILE a JSON summary of what the clients did is
written at shutdown and whenever SIGUSR1 arrives.

Every mode accepts upgrades only on `/conv/<room>` (query string allowed, e.g.
`?user=alice`); any other path is answered with HTTP 404.

Modes (see README.md for the report fields):
  chat        relay every data message verbatim to the other members of the room
  chat-echo   like chat, and also echo it back to the sender
  fragment    like chat, but every relayed message is sent fragmented
  ping        like chat, plus a ping to every client every --ping-interval-ms
  close       like chat, but the server closes with 4001 "herd-test" after --after-ms
  bigframe    one unfragmented text frame of --bytes bytes after the handshake, then chat
  badutf8     one text frame whose payload is invalid UTF-8, then chat
  badaccept   HTTP 101 with a wrong Sec-WebSocket-Accept, then chat (a client must give up)
  subprotocol require --subprotocol NAME; HTTP 400 when the client does not offer it
"""

import argparse
import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import resource
import signal
import sys
import threading
import time
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import websockets
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

MODES = (
    "chat",
    "chat-echo",
    "fragment",
    "ping",
    "close",
    "bigframe",
    "badutf8",
    "badaccept",
    "subprotocol",
)
ROOM_PATH = re.compile(r"^/conv/([^/]+)$")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# Invalid UTF-8: a truncated 2-byte sequence, then bytes that never occur in UTF-8.
BAD_UTF8_PAYLOAD = b"bad-utf8 \xc3\x28 \xff\xfe"
BIGFRAME_FILL = "Z"


class Stats:
    def __init__(self, args):
        self.args = args
        self.started = time.time()
        self.c = Counter()  # plain counters, flattened into the report
        self.close_codes_received = Counter()
        self.offered_subprotocols = Counter()
        self.offered_extensions = Counter()
        self.rejections = Counter()
        self.rooms = {}  # room -> {"joined": n, "max_members": n}
        self.extra = {}

    def report(self, live):
        a = self.args
        r = {
            "impl": "python-websockets",
            "impl_version": websockets.__version__,
            "mode": a.mode,
            "port": a.bound_port,
            "uptime_s": round(time.time() - self.started, 3),
            "connections_open": live,
        }
        for key in (
            "connections_opened",
            "connections_closed",
            "handshakes_rejected",
            "text_received",
            "binary_received",
            "bytes_received",
            "deliveries",
            "echoes",
            "client_pings_received",
        ):
            r[key] = self.c[key]
        r["rejections"] = dict(self.rejections)
        r["close_codes_received"] = dict(self.close_codes_received)
        r["offered_subprotocols"] = dict(self.offered_subprotocols)
        r["offered_extensions"] = dict(self.offered_extensions)
        r["rooms"] = self.rooms
        m = a.mode
        if m == "fragment":
            r.update(
                fragments_per_message=a.fragments,
                fragment_split=a.fragment_split,
                fragmented_messages_sent=self.c["fragmented_messages_sent"],
            )
        elif m == "ping":
            r.update(
                ping_interval_ms=a.ping_interval_ms,
                pings_sent=self.c["pings_sent"],
                pongs_received=self.c["pongs_received"],
                pongs_matched=self.c["pongs_matched"],
                pongs_unmatched=self.c["pongs_unmatched"],
            )
        elif m == "close":
            r.update(
                close_after_ms=a.after_ms,
                close_code_sent=4001,
                close_reason_sent="herd-test",
                closes_sent=self.c["closes_sent"],
                close_echoed=self.c["close_echoed"],
                close_reason_echoed=self.c["close_reason_echoed"],
                close_not_echoed=self.c["close_not_echoed"],
                close_replies=dict(self.extra.get("close_replies", {})),
            )
        elif m == "bigframe":
            r.update(bigframe_bytes=a.bytes, bigframes_sent=self.c["bigframes_sent"])
        elif m == "badutf8":
            r.update(
                badutf8_sent=self.c["badutf8_sent"],
                badutf8_payload_hex=BAD_UTF8_PAYLOAD.hex(),
                closed_with_1007=self.close_codes_received.get("1007", 0),
            )
        elif m == "badaccept":
            r.update(
                bad_accepts_sent=self.c["bad_accepts_sent"],
                clients_dropped_without_frames=self.c["clients_dropped_without_frames"],
                clients_sent_frames_after_bad_accept=self.c["clients_sent_frames_after_bad_accept"],
                clients_still_open_at_shutdown=self.c["clients_still_open_at_shutdown"],
            )
        elif m == "subprotocol":
            r.update(
                subprotocol=a.subprotocol,
                subprotocol_negotiated=self.c["subprotocol_negotiated"],
                subprotocol_rejected=self.c["subprotocol_rejected"],
            )
        return r


class PeerConnection(ServerConnection):
    """ServerConnection that counts raw ping/pong frames for the report."""

    stats = None  # set by main()

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.room = None
        self.user = None
        self.pings_outstanding = set()
        self.data_frames_seen = 0
        self.bad_accept = False

    def process_event(self, event):
        if self.request is not None and isinstance(event, Frame):
            st = self.stats
            if event.opcode is Opcode.PONG:
                st.c["pongs_received"] += 1
                data = bytes(event.data)
                if data in self.pings_outstanding:
                    self.pings_outstanding.discard(data)
                    st.c["pongs_matched"] += 1
                else:
                    st.c["pongs_unmatched"] += 1
            elif event.opcode is Opcode.PING:
                st.c["client_pings_received"] += 1
            elif event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                self.data_frames_seen += 1
        super().process_event(event)


def header_list(headers, name):
    out = []
    for value in headers.get_all(name):
        out.extend(p.strip() for p in value.split(",") if p.strip())
    return out


def split_fragments(message, k, how):
    """Split a message into exactly k fragments (some may be empty)."""
    if isinstance(message, str) and how == "bytes":
        message = message.encode()  # sent as text=True; cuts may fall inside a code point
    n = len(message)
    cuts = [n * i // k for i in range(k + 1)]
    return [message[cuts[i] : cuts[i + 1]] for i in range(k)]


async def aiter_fragments(parts):
    for p in parts:
        yield p


class Peer:
    def __init__(self, args):
        self.args = args
        self.stats = Stats(args)
        self.rooms = {}  # room -> set of connections
        self.live = set()
        self.shutting_down = False
        self.ping_seq = 0

    # -- handshake hooks -------------------------------------------------
    def process_request(self, conn, request):
        st = self.stats
        url = urlsplit(request.path)
        m = ROOM_PATH.match(url.path)
        offered = header_list(request.headers, "Sec-WebSocket-Protocol")
        st.offered_subprotocols[", ".join(offered)] += 1
        for ext in request.headers.get_all("Sec-WebSocket-Extensions"):
            st.offered_extensions[ext] += 1
        if not m:
            st.c["handshakes_rejected"] += 1
            st.rejections["404"] += 1
            return conn.respond(404, "herd peer: path must be /conv/<room>\n")
        if self.args.mode == "subprotocol" and self.args.subprotocol not in offered:
            st.c["handshakes_rejected"] += 1
            st.rejections["400"] += 1
            st.c["subprotocol_rejected"] += 1
            return conn.respond(
                400, f"herd peer: subprotocol {self.args.subprotocol!r} required\n"
            )
        conn.room = m.group(1)
        conn.user = (parse_qs(url.query).get("user") or [None])[0]
        return None

    def process_response(self, conn, request, response):
        if self.args.mode != "badaccept" or response.status_code != 101:
            return None
        key = request.headers["Sec-WebSocket-Key"]
        # Well-formed base64 of a SHA-1, but over the wrong GUID.
        wrong = base64.b64encode(
            hashlib.sha1((key + "00000000-0000-0000-0000-000000000000").encode()).digest()
        ).decode()
        del response.headers["Sec-WebSocket-Accept"]
        response.headers["Sec-WebSocket-Accept"] = wrong
        conn.bad_accept = True
        self.stats.c["bad_accepts_sent"] += 1
        return None

    # -- connection handler ----------------------------------------------
    async def handler(self, ws):
        st, args = self.stats, self.args
        st.c["connections_opened"] += 1
        self.live.add(ws)
        members = self.rooms.setdefault(ws.room, set())
        members.add(ws)
        info = st.rooms.setdefault(ws.room, {"joined": 0, "max_members": 0})
        info["joined"] += 1
        info["max_members"] = max(info["max_members"], len(members))
        if args.mode == "subprotocol" and ws.subprotocol == args.subprotocol:
            st.c["subprotocol_negotiated"] += 1
        closer = None
        try:
            if args.mode == "bigframe":
                await ws.send(BIGFRAME_FILL * args.bytes)
                st.c["bigframes_sent"] += 1
            elif args.mode == "badutf8":
                # websockets does not validate text=True payloads: this is a
                # correctly framed, unmasked text frame carrying invalid UTF-8.
                await ws.send(BAD_UTF8_PAYLOAD, text=True)
                st.c["badutf8_sent"] += 1
            elif args.mode == "close":
                closer = asyncio.create_task(self.close_later(ws))
            await self.relay_loop(ws, members)
        except ConnectionClosed:
            pass
        finally:
            members.discard(ws)
            if not members and self.rooms.get(ws.room) is members:
                del self.rooms[ws.room]
            if closer is not None:
                closer.cancel()
                await asyncio.gather(closer, return_exceptions=True)
            await ws.close()
            await ws.wait_closed()
            self.live.discard(ws)
            self.finish(ws)

    async def close_later(self, ws):
        await asyncio.sleep(self.args.after_ms / 1000)
        if ws.protocol.close_rcvd is None and ws.protocol.close_sent is None:
            self.stats.c["closes_sent"] += 1
            ws.server_closed_first = True
            try:
                await ws.close(4001, "herd-test")
            except ConnectionClosed:
                pass

    async def relay_loop(self, ws, members):
        st, mode = self.stats, self.args.mode
        async for message in ws:
            if isinstance(message, str):
                st.c["text_received"] += 1
                st.c["bytes_received"] += len(message.encode())
            else:
                st.c["binary_received"] += 1
                st.c["bytes_received"] += len(message)
            targets = [m for m in members if m is not ws]
            if mode == "chat-echo":
                targets.append(ws)
                st.c["echoes"] += 1
            if mode == "fragment":
                await asyncio.gather(
                    *(self.send_fragmented(m, message) for m in targets),
                    return_exceptions=True,
                )
            else:
                open_targets = [m for m in targets if m.state is State.OPEN]
                broadcast(open_targets, message)
                st.c["deliveries"] += len(open_targets)

    async def send_fragmented(self, m, message):
        a = self.args
        parts = split_fragments(message, a.fragments, a.fragment_split)
        text = True if isinstance(message, str) else None
        try:
            await m.send(aiter_fragments(parts), text=text)
        except ConnectionClosed:
            return
        self.stats.c["fragmented_messages_sent"] += 1
        self.stats.c["deliveries"] += 1

    def finish(self, ws):
        st = self.stats
        st.c["connections_closed"] += 1
        rcvd = ws.protocol.close_rcvd
        code = "none" if rcvd is None else str(rcvd.code)
        st.close_codes_received[code] += 1
        if getattr(ws, "server_closed_first", False):
            replies = st.extra.setdefault("close_replies", Counter())
            replies[code] += 1
            if rcvd is not None and rcvd.code == 4001:
                st.c["close_echoed"] += 1
                if rcvd.reason == "herd-test":
                    st.c["close_reason_echoed"] += 1
            else:
                st.c["close_not_echoed"] += 1
        if ws.bad_accept:
            if ws.closed_by_shutdown:
                st.c["clients_still_open_at_shutdown"] += 1
            elif rcvd is not None or ws.data_frames_seen:
                st.c["clients_sent_frames_after_bad_accept"] += 1
            else:
                st.c["clients_dropped_without_frames"] += 1

    # -- ping mode -------------------------------------------------------
    async def ping_loop(self):
        interval = self.args.ping_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            for ws in list(self.live):
                if ws.state is not State.OPEN:
                    continue
                self.ping_seq += 1
                payload = b"ping-%d" % self.ping_seq
                try:
                    waiter = await ws.ping(payload)
                except ConnectionClosed:
                    continue
                # Never awaited; retrieve its exception so nothing is logged at close.
                waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
                ws.pings_outstanding.add(payload)
                self.stats.c["pings_sent"] += 1

    # -- report ----------------------------------------------------------
    def write_report(self):
        path = self.args.report
        if not path:
            return
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.stats.report(len(self.live)), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)


def raise_nofile_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


async def main_async(args):
    peer = Peer(args)
    PeerConnection.stats = peer.stats
    PeerConnection.closed_by_shutdown = False
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, peer.write_report)
    if args.exit_on_stdin_eof:
        def watch_stdin():
            try:
                while os.read(0, 65536):  # raw fd: no buffered-stdin lock held at exit
                    pass
            except (OSError, ValueError):
                pass
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=watch_stdin, daemon=True).start()

    max_size = args.max_size or None
    server = await serve(
        peer.handler,
        "127.0.0.1",
        args.port,
        process_request=peer.process_request,
        process_response=peer.process_response,
        subprotocols=[args.subprotocol] if args.mode == "subprotocol" else None,
        compression="deflate" if args.compression == "deflate" else None,
        ping_interval=None,  # no library keepalive; ping mode sends its own
        ping_timeout=None,
        close_timeout=args.close_timeout,
        max_size=max_size,
        create_connection=PeerConnection,
        server_header=f"herd-peer python-websockets/{websockets.__version__}",
    )
    args.bound_port = server.sockets[0].getsockname()[1]
    pinger = asyncio.create_task(peer.ping_loop()) if args.mode == "ping" else None
    sys.stdout.write(f"LISTENING 127.0.0.1:{args.bound_port}\n")
    sys.stdout.flush()
    await stop.wait()
    if pinger:
        pinger.cancel()
    for ws in list(peer.live):
        ws.closed_by_shutdown = True
    server.close()  # closes open connections with 1001
    await server.wait_closed()
    peer.write_report()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 = any free port")
    p.add_argument("--report", help="write a JSON summary here at shutdown and on SIGUSR1")
    p.add_argument("--after-ms", type=int, default=200, help="close mode: delay before closing (ms)")
    p.add_argument("--bytes", type=int, default=65536, help="bigframe mode: payload size of the big text frame")
    p.add_argument("--fragments", type=int, default=3, help="fragment mode: data frames carrying each message (a final empty continuation frame follows)")
    p.add_argument("--fragment-split", choices=("chars", "bytes"), default="chars",
                   help="fragment mode: cut text at code point boundaries (chars) or at raw UTF-8 byte offsets (bytes)")
    p.add_argument("--ping-interval-ms", type=int, default=100, help="ping mode: interval between pings (ms)")
    p.add_argument("--subprotocol", default="chat.herd", help="subprotocol mode: the required subprotocol")
    p.add_argument("--max-size", type=int, default=1 << 20, help="largest message accepted from a client, bytes (0 = unlimited); larger ones are closed with 1009")
    p.add_argument("--compression", choices=("none", "deflate"), default="none", help="permessage-deflate support (default none)")
    p.add_argument("--close-timeout", type=float, default=2.0, help="seconds to wait for a closing handshake")
    p.add_argument("--exit-on-stdin-eof", action="store_true",
                   help="shut down (as on SIGTERM) when stdin reaches end of file, e.g. when the parent process dies")
    args = p.parse_args(argv)
    if args.fragments < 2:
        p.error("--fragments must be at least 2")
    args.bound_port = None
    return args


def main():
    args = parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr, format="ws_peer: %(message)s")
    raise_nofile_limit()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
