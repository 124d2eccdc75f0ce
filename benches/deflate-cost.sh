#!/usr/bin/env bash
# What permessage-deflate (`--deflate`) costs herd, per mode, in one run of this script:
#  1. memory per connection once messages have gone through it: CONNS connections (4 members per
#     conversation, one sender at 1 message/s for HOLD, so every connection has received and
#     inflated messages and holds whatever it keeps between them), RSS after the drain minus
#     RSS at start, per connection. Against `herd serve --deflate` (which answers
#     browser's offer with 15-bit windows and keeps its context, as npm ws does) for off, lean
#     and browser, and against PyPI websockets (12-bit windows, its default) for browser. 128 B
#     messages, then 8 KiB ones for off and browser: a kept window's pages are resident only once
#     that much has been inflated through it (8 x 8 KiB fills a 32 KiB window), which is where
#     a long-lived connection ends up.
#  2. CPU per delivered message, 128 B messages, RATE_CONVS conversations x 4 members at RATE
#     messages/s per sender, for off, lean and browser against `herd serve --deflate`.
#
#   benches/deflate-cost.sh
#   CONNS=15000 RATE_CONVS=1000 RUNS=5 benches/deflate-cost.sh
#   HERD=path/to/older/herd MODES=off benches/deflate-cost.sh    # another build, without --deflate
#   PARTS=cpu benches/deflate-cost.sh                              # one part only
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-10000}
PY_CONNS=${PY_CONNS:-4000}             # Python serves fewer: it is the slower server
HOLD=${HOLD:-8s}
RATE_CONVS=${RATE_CONVS:-500}          # 500 x 10/s x 3 receivers = 15k deliveries/s
RATE=${RATE:-10}
RATE_DURATION=${RATE_DURATION:-15s}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"

MODES=${MODES:-off lean browser}
PARTS=${PARTS:-memory cpu}
if [ -z "${HERD:-}" ]; then cargo build --release -q; fi
BIN=${HERD:-${CARGO_TARGET_DIR:-target}/release/herd}
SERVE_BIN=${CARGO_TARGET_DIR:-target}/release/herd   # herd serve --deflate: this build's
deflate_flag() { [ "$1" = off ] && [ -n "${HERD:-}" ] || echo "--deflate $1"; }
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Removed first: a wait could otherwise read an earlier run's address before the new file is made.
rm -f "$OUT/serve-deflate.log" "$OUT/py-peer.log"
$SERVE_BIN serve --deflate --listen 127.0.0.1:0 > "$OUT/serve-deflate.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$OUT/serve-deflate.log" && break; sleep 0.05; done
HERD_URL="ws://$(grep -o '127\.0\.0\.1:[0-9]*' "$OUT/serve-deflate.log" | head -1)/conv/{conv}?user={user}"

python3 tests/peers/ws_peer.py --mode chat --port 0 --compression deflate > "$OUT/py-peer.log" 2>"$OUT/py-peer.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q LISTENING "$OUT/py-peer.log" && break; sleep 0.1; done
PY_URL="ws://$(awk '/LISTENING/{print $2}' "$OUT/py-peer.log")/conv/{conv}?user={user}"

RUNS=${RUNS:-3}

memory() { # memory NAME URL MODE CONNS [SIZE]: the median of RUNS runs
  for i in $(seq "$RUNS"); do
    $BIN run --url "$2" $(deflate_flag "$3") --conversations $(($4 / 4)) --members 4 --rate 1 --duration "$HOLD" --size "${5:-128}" \
      --source-ip 127.0.0.2-127.0.0.9 --quiet --out "$OUT/deflate-mem-$1-$i.json" > /dev/null
  done
  python3 - "$1" "$RUNS" "$OUT" <<'PY'
import json, statistics, sys
name, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ds = [json.load(open(f"{out}/deflate-mem-{name}-{i}.json")) for i in range(1, runs + 1)]
def per(d, key):
    p = d["process"]
    return (p[key] - p["rss_start_bytes"]) / d["connections"]["established"]
d = ds[0]
z = d["websocket"].get("deflate", {})
answers = ", ".join(f"{a!r}" for a in z.get("answers", {})) or "none offered"
conn = [round(per(d, "rss_connected_bytes")) for d in ds]
# A build before rss_drained_bytes has only the figure once connected.
sent = [round(per(d, "rss_drained_bytes")) for d in ds if "rss_drained_bytes" in d["process"]]
after = f"{statistics.median(sent)} B/connection after messages {sent}" if sent else "no figure after messages"
print(f"{name:18} {d['connections']['established']} connections, {d['messages']['delivered']} delivered "
      f"({z.get('received', {}).get('messages', 0)} inflated): median {statistics.median(conn)} B/connection once connected "
      f"{conn}, {after}; answer {answers}")
PY
}

if [[ " $PARTS " == *" memory "* ]]; then
echo "== 1. memory per connection, $CONNS connections (Python: $PY_CONNS), 1 message/s per sender for $HOLD, medians of $RUNS runs"
for mode in $MODES; do memory "$mode-herd" "$HERD_URL" "$mode" "$CONNS"; done
case " $MODES " in *" browser "*) memory browser-python "$PY_URL" browser "$PY_CONNS" ;; esac
case " $MODES " in *" off "*) memory off-herd-8KiB "$HERD_URL" off "$CONNS" 8KiB ;; esac
case " $MODES " in *" browser "*)
  memory browser-herd-8KiB "$HERD_URL" browser "$CONNS" 8KiB
  memory browser-py-8KiB "$PY_URL" browser "$PY_CONNS" 8KiB ;;
esac

fi

[[ " $PARTS " == *" cpu "* ]] || exit 0
echo "== 2. CPU per delivered message: $RATE_CONVS conversations x 4 members, $RATE/s per sender, 128 B, $RATE_DURATION"
for mode in $MODES; do
  $BIN run --url "$HERD_URL" $(deflate_flag "$mode") --conversations "$RATE_CONVS" --members 4 --rate "$RATE" --size 128 \
    --duration "$RATE_DURATION" --quiet --out "$OUT/deflate-cpu-$mode.json" > /dev/null
  python3 - "$OUT/deflate-cpu-$mode.json" "$mode" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m, p, z = d["messages"], d["process"], d["websocket"].get("deflate", {})
r, s = z.get("received", {}), z.get("sent", {})
ratio = f", wire/plain received {r['wire_bytes'] / r['bytes']:.2f} sent {s['wire_bytes'] / s['bytes']:.2f}" if r.get("bytes") else ""
print(f"{sys.argv[2]:8} delivered {m['delivered']} of {m['expected']} (missed {m['missed']}): "
      f"{p['cpu_per_delivery_us']:.2f} µs CPU per delivered message{ratio}; "
      f"latency p50 {d['latency']['corrected']['p50_ms']} ms p99 {d['latency']['corrected']['p99_ms']} ms")
PY
done
