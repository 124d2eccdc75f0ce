#!/usr/bin/env python3
"""Holds rooms of two on a herd serve with a few /user/ connections (benches/serve-joins.sh).

Opens CONNS connections to ws://ADDR/user/holdN; connections 2k and 2k+1 both join the same
share of the rooms PREFIX{FIRST} .. PREFIX{FIRST+COUNT-1}, so every room has two members, on
whichever cores SO_REUSEPORT put the two. Joins go out in windows of WINDOW and each waits for its
`joined` answer (the server's queue per connection is bounded). Prints `HELD COUNT` once every
room is joined, then holds the connections until its standard input closes.

Needs PyPI websockets (tests/peers/requirements.txt, installed by .ci/peers.sh).
"""
import argparse
import asyncio
import sys

from websockets.asyncio.client import connect

WINDOW = 256


async def member(url, rooms):
    ws = await connect(url, max_queue=None, ping_interval=None, open_timeout=30)
    for at in range(0, len(rooms), WINDOW):
        window = rooms[at:at + WINDOW]
        for r in window:
            await ws.send(f"join {r}")
        for r in window:
            answer = await asyncio.wait_for(ws.recv(), 60)
            if answer != f"joined {r}":
                raise SystemExit(f"hold-rooms: expected 'joined {r}', got {answer!r}")
    return ws


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--prefix", default="held")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--conns", type=int, default=8)
    a = p.parse_args()
    pairs = max(1, a.conns // 2)
    rooms = [f"{a.prefix}{i}" for i in range(a.first, a.first + a.count)]
    shares = [rooms[i::pairs] for i in range(pairs)]
    tasks = []
    for i, share in enumerate(shares):
        for j in range(2):
            tasks.append(member(f"ws://{a.addr}/user/hold{a.first}-{i}-{j}", share))
    conns = await asyncio.gather(*tasks)
    print(f"HELD {a.count}", flush=True)
    # Hold until told (stdin closes), without busy waiting.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for ws in conns:
        await ws.close()


if __name__ == "__main__":
    asyncio.run(main())
