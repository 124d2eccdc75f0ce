#!/usr/bin/env bash
# What a population costs the generator: user-space memory per idle connection and per room
# membership, and CPU per delivered message with rooms of 2 and with one room of 2,000, at the
# same deliveries per second. Against a separate server on loopback, so that herd's own process
# is measured alone: `herd serve` (SERVER=herd, the default) or the npm socket.io 4.8 peer
# (SERVER=sio; `npm ci --prefix tests/peers` first). Prints the figures, keeps the JSON in $OUT.
#
#   benches/population-cost.sh
#   SERVER=sio USERS=5000 RATE=6.75 benches/population-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=${SERVER:-herd}
USERS=${USERS:-5000}          # users (one device each) held idle for the memory figures
HOLD=${HOLD:-3s}
RATE=${RATE:-6.75}            # per sender: 2,000 rooms of 2, or 1 room of 2,000 -> 13.5k deliveries/s
DURATION=${DURATION:-15s}
CONNECT_RATE=${CONNECT_RATE:-2000}   # each connection joins ~20 rooms, one acknowledgement at a time
OUT=${OUT:-bench-out}
mkdir -p "$OUT"

# HERD=path measures another build (and skips building this one).
if [ -z "${HERD:-}" ]; then cargo build --release -q; fi
BIN=${HERD:-${CARGO_TARGET_DIR:-target}/release/herd}

if [ "$SERVER" = sio ]; then
  node tests/peers/sio_peer.js --port 0 < /dev/null > "$OUT/server.log" 2>&1 &
  TARGET=(--target socketio)
  PATH_T="/socket.io/?EIO=4&transport=websocket"
else
  $BIN serve --listen 127.0.0.1:0 > "$OUT/server.log" 2>&1 &
  TARGET=()
  PATH_T="/user/{user}"
fi
SRV=$!
trap 'kill $SRV 2>/dev/null; wait $SRV 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -qiE 'listening' "$OUT/server.log" && break; sleep 0.05; done
ADDR=$(grep -o '127\.0\.0\.1:[0-9]*' "$OUT/server.log" | head -1)
URL="ws://$ADDR$PATH_T"

run() { # name, then herd run flags
  local name=$1; shift
  $BIN run --url "$URL" "${TARGET[@]}" --seed 1 --quiet --connect-rate "$CONNECT_RATE" --connect-timeout 30s \
    --out "$OUT/$name.json" "$@" > /dev/null
}

echo "== memory: $USERS users held idle for $HOLD, in about 1 room each, then about 20"
run pop-1room --users "$USERS" --community "$USERS" --room-class "dm,rooms=$((USERS / 2)),size=2,rate=0" -d "$HOLD"
run pop-20rooms --users "$USERS" --community "$USERS" -d "$HOLD" \
  --room-class "dm,rooms=$((USERS * 6)),size=2,rate=0" \
  --room-class "group,rooms=$((USERS * 2 / 5)),size=3-30,rate=0" \
  --room-class "channel,rooms=1,size=1000,rate=0"
python3 - "$OUT/pop-1room.json" "$OUT/pop-20rooms.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
def fig(d):
    p = d["population"]["population"]
    grow = d["process"]["rss_connected_bytes"] - d["process"]["rss_start_bytes"]
    return p["connections"], p["memberships"], grow, d["connections"]["established"], d["population"]["population"]["table_bytes"]
for name, d in (("~1 room", a), ("~20 rooms", b)):
    c, m, g, e, t = fig(d)
    print(f"{name}: {e}/{c} connections, {m} memberships ({m / c:.1f} per connection), "
          f"RSS growth while connecting {g / c:.0f} B per connection; membership tables {t / m:.1f} B per membership")
(ca, ma, ga, _, _), (cb, mb, gb, _, tb) = fig(a), fig(b)
print(f"per membership while connected: {(gb - ga) / (mb - ma):.1f} B (RSS growth difference over membership difference)"
      f" + {tb / mb:.1f} B of membership tables")
PY

echo "== CPU: 2,000 rooms of 2 and one room of 2,000, one sender each at $RATE/s, for $DURATION"
run pop-dm --users 4000 --community 4000 --room-class "dm,rooms=2000,size=2,rate=$RATE" -d "$DURATION"
run pop-channel --users 2000 --community 2000 --room-class "channel,rooms=1,size=2000,rate=$RATE" -d "$DURATION"
python3 - "$OUT/pop-dm.json" "$OUT/pop-channel.json" <<'PY'
import json, sys
for f in sys.argv[1:3]:
    d = json.load(open(f))
    m, p, c = d["messages"], d["process"], d["population"]["classes"][0]
    secs = d["phases"]["send_s"] + d["phases"]["drain_s"]
    print(f"{c['class']}: fan-out {c['fanout']['mean']:.0f}, delivered {m['delivered']} of {m['expected']} "
          f"(missed {m['missed']}, duplicated {m['duplicated']}), {m['delivered'] / secs:.0f} deliveries/s, "
          f"CPU {p['cpu_send_drain_s']:.2f} s -> {p['cpu_per_delivery_us']:.2f} µs per delivered message; "
          f"p99 {c['latency']['corrected']['p99_ms']} ms")
PY
