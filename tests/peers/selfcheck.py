#!/usr/bin/env python3
"""Self-check of herd's WebSocket test peers, driven by the `websockets` client.

    python3 tests/peers/selfcheck.py [--only py,js,nchan] [-v]

Starts every fixture (ws_peer.py and ws_peer.js in each mode, nchan.py) on
port 0, reads its LISTENING line, exercises the mode with real WebSocket
clients, stops it with SIGTERM, and checks its exit status and --report JSON.
Prints one PASS/FAIL line per check and ends with `N passed, N failed`;
exits non-zero when anything failed.  Everything it starts is stopped.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

HERE = os.path.dirname(os.path.abspath(__file__))
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
QUIET = 0.3  # how long "receives nothing" waits

VERBOSE = False


def log(*a):
    if VERBOSE:
        print("   ", *a, flush=True)


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


class Fixture:
    """One running fixture process."""

    def __init__(self, kind, mode, extra, workdir):
        self.kind, self.mode, self.extra = kind, mode, list(extra)
        self.stdin_pipe = "--exit-on-stdin-eof" in self.extra
        self.report_path = os.path.join(workdir, "report.json")
        self.workdir = workdir
        self.proc = None
        self.port = None
        self.stdout_lines = []

    def argv(self):
        if self.kind == "py":
            return [sys.executable, os.path.join(HERE, "ws_peer.py"), "--mode", self.mode,
                    "--port", "0", "--report", self.report_path, *self.extra]
        if self.kind == "js":
            return [shutil.which("node") or "node", os.path.join(HERE, "ws_peer.js"), "--mode", self.mode,
                    "--port", "0", "--report", self.report_path, *self.extra]
        if self.kind == "nchan":
            return [sys.executable, os.path.join(HERE, "nchan.py"), "--port", "0",
                    "--dir", os.path.join(self.workdir, "nginx"), "--report", self.report_path, *self.extra]
        raise ValueError(self.kind)

    async def start(self):
        self.stderr_path = os.path.join(self.workdir, "stderr.txt")
        with open(self.stderr_path, "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv(),
                stdin=asyncio.subprocess.PIPE if self.stdin_pipe else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=err)
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT)
        except asyncio.TimeoutError:
            raise CheckFailed("no LISTENING line within %ss" % START_TIMEOUT)
        text = line.decode().rstrip("\n")
        self.stdout_lines.append(text)
        if not text.startswith("LISTENING 127.0.0.1:"):
            await asyncio.sleep(0.2)
            raise CheckFailed(f"bad first stdout line {text!r} {self.read_stderr()[-2000:]}")
        self.port = int(text.rsplit(":", 1)[1])
        check(self.port > 0, "port > 0")
        log(self.kind, self.mode, "listening on", self.port)

    def url(self, path):
        return f"ws://127.0.0.1:{self.port}{path}"

    async def signal_and_read_report(self, sig=signal.SIGUSR1):
        """Ask for a report while running (SIGUSR1) and return it."""
        try:
            os.unlink(self.report_path)
        except FileNotFoundError:
            pass
        self.proc.send_signal(sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if os.path.exists(self.report_path):
                with open(self.report_path) as f:
                    return json.load(f)
            await asyncio.sleep(0.05)
        raise CheckFailed("no report after SIGUSR1")

    async def stop(self):
        """SIGTERM, expect exit 0, no further stdout, and a report file."""
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = await asyncio.wait_for(self.proc.communicate(), STOP_TIMEOUT)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise CheckFailed("did not exit within %ss of SIGTERM" % STOP_TIMEOUT)
        self.stderr = self.read_stderr()
        rest = out.decode().splitlines()
        self.stdout_lines.extend(rest)
        check(self.proc.returncode == 0, f"exit code {self.proc.returncode}, stderr: {self.stderr[-2000:]}")
        check(len(self.stdout_lines) == 1, f"stdout must be exactly one line, got {self.stdout_lines!r}")
        with open(self.report_path) as f:
            report = json.load(f)
        log("report:", json.dumps(report, sort_keys=True))
        return report

    def read_stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill(self):
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


# ---------------------------------------------------------------- helpers
async def recv_or_none(ws, timeout=QUIET):
    try:
        return await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        return None


async def recv(ws, timeout=3.0):
    return await asyncio.wait_for(ws.recv(), timeout)


async def recv_fragments(ws, timeout=3.0):
    async def collect():
        return [frag async for frag in ws.recv_streaming()]
    return await asyncio.wait_for(collect(), timeout)


def client(fx, path, **kw):
    kw.setdefault("compression", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 3)
    return connect(fx.url(path), **kw)


async def settle():
    # Let the server's handler register the new members in their room.
    await asyncio.sleep(0.2)


# ---------------------------------------------------------------- peer mode checks (py and js)
async def peer_chat(fx):
    async with client(fx, "/conv/room1?user=alice") as a, client(fx, "/conv/room1?user=bob") as b, \
            client(fx, "/conv/room2?user=carol") as c:
        await settle()
        await a.send("herd-check chat 1 ✓")
        check(await recv(b) == "herd-check chat 1 ✓", "bob receives alice's text verbatim")
        check(await recv_or_none(a) is None, "sender does not get its own message back")
        check(await recv_or_none(c) is None, "other room receives nothing")
        await b.send(b"\x00\x01herd-binary")
        check(await recv(a) == b"\x00\x01herd-binary", "binary relayed as binary")
    try:
        async with client(fx, "/not-a-room"):
            raise CheckFailed("upgrade on a wrong path must be refused")
    except InvalidStatus as e:
        check(e.response.status_code == 404, f"wrong path -> 404, got {e.response.status_code}")
    # A client still connected at shutdown gets 1001 and its echo is recorded.
    d = await client(fx, "/conv/room3?user=dave")
    await settle()
    r = await fx.stop()
    try:
        await recv(d)
        raise CheckFailed("connection open after server stop")
    except ConnectionClosed as e:
        check(e.rcvd is not None and e.rcvd.code == 1001, f"shutdown closes with 1001, got {e.rcvd}")
    await d.close()
    check(r["text_received"] == 1 and r["binary_received"] == 1, "report counts 1 text + 1 binary")
    check(r["deliveries"] == 2, f"deliveries == 2, got {r['deliveries']}")
    check(r["connections_opened"] == 4 and r["connections_closed"] == 4, "4 connections opened and closed")
    check(r["rejections"] == {"404": 1}, f"one 404 rejection, got {r['rejections']}")
    check(r["close_codes_received"] == {"1000": 3, "1001": 1}, f"close codes {r['close_codes_received']}")
    check(r["rooms"]["room1"]["max_members"] == 2, "room1 had 2 members")
    check(r["connections_open"] == 0, "no connection left open")


async def peer_chat_echo(fx):
    async with client(fx, "/conv/r?user=a") as a, client(fx, "/conv/r?user=b") as b:
        await settle()
        await a.send("herd-check echo")
        check(await recv(b) == "herd-check echo", "other member receives")
        check(await recv(a) == "herd-check echo", "sender receives its echo")
        check(await recv_or_none(a) is None, "echo only once")
    r = await fx.stop()
    check(r["echoes"] == 1 and r["deliveries"] == 2, f"echoes 1 deliveries 2, got {r['echoes']} {r['deliveries']}")


async def peer_fragment(fx):
    msg = "herd-check fragment: ünïcödé ✓ " + "x" * 40
    async with client(fx, "/conv/f?user=a") as a, client(fx, "/conv/f?user=b") as b:
        await settle()
        await a.send(msg)
        frags = await recv_fragments(b)
        log("fragments:", [len(f) for f in frags])
        check(len(frags) >= 3, f"message arrives in >= 3 frames, got {len(frags)}")
        check("".join(frags) == msg, "fragments reassemble to the exact message")
        await a.send(b"\x00" * 10 + b"herd-bin")
        frags = await recv_fragments(b)
        check(len(frags) >= 3 and b"".join(frags) == b"\x00" * 10 + b"herd-bin", "binary fragmented too")
    r = await fx.stop()
    check(r["fragmented_messages_sent"] == 2, f"fragmented_messages_sent == 2, got {r['fragmented_messages_sent']}")
    check(r["fragments_per_message"] == 3, "default 3 fragments")


async def peer_fragment_bytes(fx):
    # Cuts at raw UTF-8 byte offsets: code points are split across frames.
    msg = "✓✓✓✓ herd-check ünïcödé ✓✓✓"
    async with client(fx, "/conv/f?user=a") as a, client(fx, "/conv/f?user=b") as b:
        await settle()
        await a.send(msg)
        check(await recv(b) == msg, "byte-split fragments reassemble to the exact text")
    r = await fx.stop()
    check(r["fragment_split"] == "bytes" and r["fragments_per_message"] == 5, "bytes split, 5 fragments")


async def peer_ping(fx):
    async with client(fx, "/conv/p?user=a") as a, client(fx, "/conv/p?user=b") as b:
        await settle()
        await asyncio.sleep(0.6)
        mid = await fx.signal_and_read_report()
        check(mid["mode"] == "ping" and mid["pings_sent"] >= 4, f"SIGUSR1 report shows pings, got {mid.get('pings_sent')}")
        check(mid["connections_open"] == 2, "SIGUSR1 report: 2 open connections")
        await a.send("herd-check ping relay")
        check(await recv(b) == "herd-check ping relay", "relay still works in ping mode")
        await asyncio.sleep(0.3)
    r = await fx.stop()
    log("pings", r["pings_sent"], "pongs", r["pongs_received"], r["pongs_matched"])
    check(r["pings_sent"] >= 8, f"pings every 100 ms to 2 clients, got {r['pings_sent']}")
    check(r["pongs_received"] >= r["pings_sent"] - 2, f"pongs {r['pongs_received']} for {r['pings_sent']} pings")
    check(r["pongs_matched"] == r["pongs_received"] and r["pongs_unmatched"] == 0, "pong payloads match pings")


async def peer_close(fx):
    async with client(fx, "/conv/c?user=a") as a:
        t0 = time.monotonic()
        try:
            await recv(a)
            raise CheckFailed("expected the server to close")
        except ConnectionClosed as e:
            waited = time.monotonic() - t0
            check(e.rcvd is not None and e.rcvd.code == 4001 and e.rcvd.reason == "herd-test",
                  f"client sees close 4001 herd-test, got {e.rcvd}")
            check(e.sent is not None and e.sent.code == 4001, f"python client echoes 4001, sent {e.sent}")
            check(0.1 <= waited < 3.0, f"closed after ~200 ms, took {waited:.3f}s")
    r = await fx.stop()
    check(r["closes_sent"] == 1 and r["close_echoed"] == 1 and r["close_not_echoed"] == 0,
          f"report: closes_sent/close_echoed {r['closes_sent']}/{r['close_echoed']}")
    check(r["close_replies"] == {"4001": 1}, f"close_replies {r['close_replies']}")


async def peer_bigframe(fx):
    n = 300_000
    async with client(fx, "/conv/b?user=a", max_size=None) as a, client(fx, "/conv/b?user=b", max_size=None) as b:
        frags = await recv_fragments(a)
        check(len(frags) == 1, f"big message is one frame, got {len(frags)}")
        check(frags[0] == "Z" * n, "big frame has --bytes bytes of 'Z'")
        check(len(await recv(b)) == n, "second client gets its own big frame")
        await settle()
        await a.send("herd-check after bigframe")
        check(await recv(b) == "herd-check after bigframe", "chat works after the big frame")
    r = await fx.stop()
    check(r["bigframes_sent"] == 2 and r["bigframe_bytes"] == n, "report: 2 big frames of n bytes")


async def peer_badutf8(fx):
    async with client(fx, "/conv/u?user=a") as a:
        try:
            await recv(a)
            raise CheckFailed("client should fail on invalid UTF-8")
        except ConnectionClosed as e:
            check(e.sent is not None and e.sent.code == 1007, f"python client closes with 1007, sent {e.sent}")
    r = await fx.stop()
    check(r["badutf8_sent"] == 1, "report: badutf8_sent 1")
    check(r["closed_with_1007"] == 1 and r["close_codes_received"] == {"1007": 1},
          f"report: close codes {r['close_codes_received']}")


async def peer_badaccept(fx):
    try:
        async with client(fx, "/conv/x?user=a"):
            raise CheckFailed("handshake with a wrong Sec-WebSocket-Accept must fail")
    except InvalidHandshake as e:
        log("client error:", repr(e))
        check("Sec-WebSocket-Accept" in str(e) or "accept" in str(e).lower(), f"failure names the accept header: {e!r}")
    await asyncio.sleep(0.3)
    r = await fx.stop()
    check(r["bad_accepts_sent"] == 1, f"report: bad_accepts_sent 1, got {r['bad_accepts_sent']}")
    check(r["clients_dropped_without_frames"] == 1, f"client dropped the TCP connection without frames: {r}")


async def peer_subprotocol(fx):
    async with client(fx, "/conv/s?user=a", subprotocols=["chat.herd"]) as a, \
            client(fx, "/conv/s?user=b", subprotocols=["x.other", "chat.herd"]) as b:
        check(a.subprotocol == "chat.herd" and b.subprotocol == "chat.herd", "chat.herd negotiated")
        await settle()
        await a.send("herd-check subprotocol")
        check(await recv(b) == "herd-check subprotocol", "relay with subprotocol")
    for offer in (None, ["x.other"]):
        try:
            async with client(fx, "/conv/s?user=c", subprotocols=offer):
                raise CheckFailed(f"offer {offer} must be rejected")
        except InvalidStatus as e:
            check(e.response.status_code == 400, f"offer {offer} -> 400, got {e.response.status_code}")
    r = await fx.stop()
    check(r["subprotocol_negotiated"] == 2 and r["subprotocol_rejected"] == 2, "report: 2 negotiated, 2 rejected")
    check(r["offered_subprotocols"] == {"chat.herd": 1, "x.other, chat.herd": 1, "": 1, "x.other": 1},
          f"offered_subprotocols {r['offered_subprotocols']}")


async def stdin_eof(fx):
    """--exit-on-stdin-eof: closing the fixture's stdin shuts it down cleanly."""
    async with client(fx, "/conv/eof?user=a") as a:
        await settle()
        fx.proc.stdin.close()
        try:
            await recv(a, 10)
            raise CheckFailed("connection still open after stdin EOF")
        except ConnectionClosed as e:
            check(e.rcvd is not None and e.rcvd.code == 1001, f"closed with 1001 on stdin EOF, got {e.rcvd}")
    rc = await asyncio.wait_for(fx.proc.wait(), STOP_TIMEOUT)
    check(rc == 0, f"exit code {rc} after stdin EOF: {fx.read_stderr()[-2000:]}")
    check(os.path.exists(fx.report_path), "report written on stdin EOF")


PEER_CHECKS = [
    ("chat", [], peer_chat),
    ("chat-echo", [], peer_chat_echo),
    ("fragment", [], peer_fragment),
    ("fragment", ["--fragment-split", "bytes", "--fragments", "5"], peer_fragment_bytes),
    ("ping", [], peer_ping),
    ("close", [], peer_close),
    ("bigframe", ["--bytes", "300000"], peer_bigframe),
    ("badutf8", [], peer_badutf8),
    ("badaccept", [], peer_badaccept),
    ("subprotocol", [], peer_subprotocol),
    ("chat", ["--exit-on-stdin-eof"], stdin_eof),
]


# ---------------------------------------------------------------- nchan checks
async def nchan_chat(fx):
    async with client(fx, "/conv/room1?user=alice", max_size=None) as a, \
            client(fx, "/conv/room1?user=bob", max_size=None) as b, \
            client(fx, "/conv/room2?user=carol") as c:
        await settle()
        await a.send("herd-check nchan 1")
        check(await recv(b) == "herd-check nchan 1", "bob receives alice's message")
        # Documented nchan behaviour: the publisher is a subscriber too.
        check(await recv(a) == "herd-check nchan 1", "nchan echoes the message to its sender")
        check(await recv_or_none(c) is None, "other conversation receives nothing")
        await b.send(b"\x00herd-bin")
        check(await recv(a) == b"\x00herd-bin", "binary delivered as binary")
        check(await recv(b) == b"\x00herd-bin", "binary echoed to sender")
        big = "y" * (2 * 1024 * 1024 + 7)
        await a.send(big)
        check(await recv(b, 10) == big, "2 MiB message delivered")
        await recv(a, 10)
        pong = await a.ping(b"herd")
        await asyncio.wait_for(pong, 3)
        mid = await fx.signal_and_read_report()
        check(mid["stub_status"]["subscribers"] == 3, f"stub status: 3 subscribers, got {mid['stub_status']}")
    async with client(fx, "/conv/room1?user=late") as late:
        check(await recv_or_none(late) is None, "a late joiner gets no old messages (first_message newest)")
    for path in ("/conv/bad-id", "/other"):
        try:
            async with client(fx, path):
                raise CheckFailed(f"{path} must be refused")
        except InvalidStatus as e:
            check(e.response.status_code == 404, f"{path} -> 404, got {e.response.status_code}")
    d = await client(fx, "/conv/room9?user=dave")
    pidfile = os.path.join(fx.workdir, "nginx", "nginx.pid")
    master = int(open(pidfile).read())
    r = await fx.stop()
    try:
        await recv(d, 5)
        raise CheckFailed("connection open after nginx stop")
    except ConnectionClosed as e:
        log("client at shutdown saw", e.rcvd, e.sent)
    await d.close()
    try:
        os.kill(master, 0)
        raise CheckFailed(f"nginx master {master} still running")
    except ProcessLookupError:
        pass
    check(r["nginx_exit_code"] == 0, f"nginx exit code {r['nginx_exit_code']}")
    check(r["worker_crashes"] == 0, "no worker crashed")
    bad = {k: v for k, v in r["error_log_levels"].items() if k in ("emerg", "alert", "crit")}
    check(not bad, f"no emerg/alert/crit in nginx's error.log, got {bad}")
    check(r["stub_status"]["total_published_messages"] >= 3, "stub status counts published messages")
    check(r["impl_version"], "nchan version reported")


async def nchan_fragment_note(fx):
    """Observe (not assert) what nchan does with a fragmented message from a client."""
    async with client(fx, "/conv/frag?user=a") as a, client(fx, "/conv/frag?user=b") as b:
        await settle()
        await a.send(iter(["herd-frag-1 ", "herd-frag-2 ", "herd-frag-3"]))
        got = await recv_or_none(b, 1.0)
        try:
            await recv(a, 2.0)  # its own echo, then the close
            await recv(a, 2.0)
            closed = None
        except ConnectionClosed as e:
            closed = e.rcvd
    await fx.stop()
    return f"nchan, fragmented publish: the other member got {got!r}; the sender's connection closed with {closed}"


NCHAN_CHECKS = [
    ("nchan", [], nchan_chat),
    ("nchan", ["--exit-on-stdin-eof"], stdin_eof),
]


# ---------------------------------------------------------------- runner
async def run_one(kind, mode, extra, fn, root):
    label = f"{kind} {mode}" + (" " + " ".join(extra) if extra else "")
    workdir = tempfile.mkdtemp(prefix=f"{kind}-{mode}-", dir=root)
    fx = Fixture(kind, mode, extra, workdir)
    try:
        await fx.start()
        result = await asyncio.wait_for(fn(fx), 60)
        await fx.stop()
        if isinstance(result, str):
            print(f"NOTE {label}: {result}", flush=True)
            return None
        print(f"PASS {label}", flush=True)
        return True
    except Exception as e:  # noqa: BLE001
        detail = str(e) if isinstance(e, CheckFailed) else traceback.format_exc()
        print(f"FAIL {label}: {detail}", flush=True)
        try:
            if fx.proc is not None and fx.proc.returncode is None:
                fx.proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(fx.proc.wait(), 10)
        except Exception:  # noqa: BLE001
            pass
        return False
    finally:
        fx.kill()
        if fx.proc is not None:
            await fx.proc.wait()


def prerequisites(kind):
    if kind == "js":
        if not shutil.which("node"):
            return "node not found"
        if not os.path.isdir(os.path.join(HERE, "node_modules", "ws")):
            return "run: npm ci --prefix tests/peers"
    if kind == "nchan":
        if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
            return "run: apt-get install -y nginx-light libnginx-mod-nchan"
    return None


async def main_async(kinds):
    root = tempfile.mkdtemp(prefix="herd-peers-selfcheck-")
    passed = failed = 0
    try:
        for kind in kinds:
            missing = prerequisites(kind)
            if missing:
                print(f"FAIL {kind}: prerequisite missing: {missing}", flush=True)
                failed += 1
                continue
            checks = NCHAN_CHECKS + [("nchan-fragment", [], nchan_fragment_note)] if kind == "nchan" else PEER_CHECKS
            for mode, extra, fn in checks:
                ok = await run_one(kind, mode, extra, fn, root)
                if ok is True:
                    passed += 1
                elif ok is False:
                    failed += 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


def main():
    global VERBOSE
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="py,js,nchan", help="comma-separated subset of py,js,nchan")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args()
    VERBOSE = a.verbose
    kinds = [k.strip() for k in a.only.split(",") if k.strip()]
    for k in kinds:
        if k not in ("py", "js", "nchan"):
            p.error(f"unknown fixture kind {k}")
    return asyncio.run(main_async(kinds))


if __name__ == "__main__":
    sys.exit(main())
