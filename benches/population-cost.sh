#!/usr/bin/env bash
# What a population costs the generator: user-space memory per idle connection and per room
# membership, and CPU per delivered message with rooms of 2, of 10 and one room of 2,000 at the
# same deliveries per second (against herd serve, beside the grid with the same rooms). Against a separate server on loopback, so that herd's own process
# is measured alone: `herd serve` (SERVER=herd, the default) or the npm socket.io 4.8 peer
# (SERVER=sio; `npm ci --prefix tests/peers` first). Prints the figures, keeps the JSON in $OUT.
#
#   benches/population-cost.sh
#   SERVER=sio USERS=5000 RATE=6.75 benches/population-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=${SERVER:-herd}
USERS=${USERS:-15000}         # users (one device each) held idle for the memory figures
SMALL=${SMALL:-1000}          # ... and the smaller run they are compared with
REPEAT=${REPEAT:-3}           # memory runs per size (medians reported)
HOLD=${HOLD:-3s}
RATE=${RATE:-6.75}            # per sender: 2,000 rooms of 2, or 1 room of 2,000 -> 13.5k deliveries/s
DURATION=${DURATION:-15s}
CONNECT_RATE=${CONNECT_RATE:-2000}   # each connection joins ~20 rooms, one acknowledgement at a time
OUT=${OUT:-bench-out}
mkdir -p "$OUT"

# HERD=path measures another build (and skips building this one); ONLY=memory or ONLY=cpu runs one part.
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

# Memory per connection is the difference between two runs of one executor, SMALL and USERS
# users, over the difference in connections (so fixed costs, such as the executor, tables sized
# per run and the histograms, do not count), at the process's peak (VmHWM: joins in flight
# included) and once every connection had joined.
if [ "${ONLY:-all}" != cpu ]; then
echo "== memory: one executor, $SMALL then $USERS users held idle for $HOLD, in 1 room each, then about 20"
pop1() { # name users
  run "$1" --threads 1 --users "$2" --community "$2" --room-class "dm,rooms=$(($2 / 2)),size=2,rate=0" -d "$HOLD"
}
pop20() { # name users
  run "$1" --threads 1 --users "$2" --community "$2" -d "$HOLD" \
    --room-class "dm,rooms=$(($2 * 6)),size=2,rate=0" \
    --room-class "group,rooms=$(($2 * 2 / 5)),size=3-30,rate=0" \
    --room-class "channel,rooms=1,size=$(($2 < 1000 ? $2 : 1000)),rate=0"
}
for i in $(seq "$REPEAT"); do
  pop1 "pop-1room-small-$i" "$SMALL"
  pop1 "pop-1room-$i" "$USERS"
  pop20 "pop-20rooms-small-$i" "$SMALL"
  pop20 "pop-20rooms-$i" "$USERS"
done
python3 - "$OUT" "$REPEAT" <<'PY'
import json, statistics, sys
out, repeat = sys.argv[1], int(sys.argv[2])
def fig(name):
    d = json.load(open(f"{out}/{name}.json"))
    p, pr = d["population"]["population"], d["process"]
    assert d["connections"]["established"] == p["connections"], f"{name}: not every connection was established"
    return p["connections"], p["memberships"], pr["rss_peak_bytes"], pr["rss_connected_bytes"], p["table_bytes"]
def per_conn(small, large):
    (c0, m0, p0, k0, _), (c1, m1, p1, k1, _) = fig(small), fig(large)
    return (p1 - p0) / (c1 - c0), (k1 - k0) / (c1 - c0), (m1 - m0) / (c1 - c0)
rows = {"1 room": [], "~20 rooms": [], "membership": []}
for i in range(1, repeat + 1):
    one = per_conn(f"pop-1room-small-{i}", f"pop-1room-{i}")
    twenty = per_conn(f"pop-20rooms-small-{i}", f"pop-20rooms-{i}")
    rows["1 room"].append(one[:2])
    rows["~20 rooms"].append(twenty[:2])
    rows["membership"].append(((twenty[0] - one[0]) / (twenty[2] - one[2]), (twenty[1] - one[1]) / (twenty[2] - one[2])))
    # Joins waiting for their acknowledgements are part of the peak: the slower the server
    # acknowledges, the more connections join at once.
    join = json.load(open(f"{out}/pop-20rooms-{i}.json"))["connect_phases"]["join"]
    print(f"run {i}: 1 room {one[0]:.0f} B per connection at peak, {one[1]:.0f} B once joined; ~20 rooms "
          f"{twenty[0]:.0f} / {twenty[1]:.0f} B; per membership {rows['membership'][-1][0]:.1f} / {rows['membership'][-1][1]:.1f} B"
          f" (~20 rooms: join p50 {join['p50_ms']:.0f} ms, p99 {join['p99_ms']:.0f} ms)")
med = {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v)) for k, v in rows.items()}
c, m, _, _, t = fig(f"pop-20rooms-{repeat}")
print(f"medians of {repeat}: per connection in 1 room {med['1 room'][0]:.0f} B at peak, {med['1 room'][1]:.0f} B once joined; "
      f"in ~20 rooms ({m / c:.1f} per connection) {med['~20 rooms'][0]:.0f} / {med['~20 rooms'][1]:.0f} B")
print(f"per membership: {med['membership'][0]:.1f} B at peak, {med['membership'][1]:.1f} B once joined "
      f"(per-connection difference over memberships-per-connection difference), + {t / m:.1f} B of membership tables")
PY
fi

if [ "${ONLY:-all}" = memory ]; then exit 0; fi
# At ~13.5k deliveries/s: 2,000 rooms of 2 (one sender each at RATE/s), 1,350 rooms of 10 (at
# RATE/9), one room of 2,000 (at RATE); against herd serve also the grid (-c/-k, one connection
# per member) with the same rooms, for the population-over-grid ratio at the same room size.
echo "== CPU: rooms of 2, of 10 and of 2,000 at ~13.5k deliveries/s, for $DURATION"
R10=$(python3 -c "print(round($RATE * 2000 / 1350 / 9, 4))")   # 1,350 x 9 x R10 = 2,000 x RATE
run pop-dm --users 4000 --community 4000 --room-class "dm,rooms=2000,size=2,rate=$RATE" -d "$DURATION"
run pop-group --users 13500 --community 13500 --room-class "group,rooms=1350,size=10,rate=$R10" -d "$DURATION"
run pop-channel --users 2000 --community 2000 --room-class "channel,rooms=1,size=2000,rate=$RATE" -d "$DURATION"
GRID=()
if [ "$SERVER" = herd ]; then
  for spec in "grid-k2 2000 2 $RATE" "grid-k10 1350 10 $R10"; do
    set -- $spec
    $BIN run --url "ws://$ADDR/conv/{conv}" --seed 1 --quiet --connect-rate "$CONNECT_RATE" -c "$2" -k "$3" \
      --senders 1 --rate "$4" -d "$DURATION" --out "$OUT/$1.json" > /dev/null
    GRID+=("$OUT/$1.json")
  done
fi
python3 - "$OUT/pop-dm.json" "$OUT/pop-group.json" "$OUT/pop-channel.json" "${GRID[@]}" <<'PY'
import json, sys
us = {}
for f in sys.argv[1:]:
    d = json.load(open(f))
    m, p = d["messages"], d["process"]
    secs = d["phases"]["send_s"] + d["phases"]["drain_s"]
    if "population" in d:
        c = d["population"]["classes"][0]
        name, fan, p99 = c["class"], c["fanout"]["mean"], c["latency"]["corrected"]["p99_ms"]
    else:
        name, fan, p99 = f"grid -k {d['scenario']['members']}", d["scenario"]["members"] - 1, d["latency"]["corrected"]["p99_ms"]
    us[name] = p["cpu_per_delivery_us"]
    print(f"{name}: fan-out {fan:.0f}, delivered {m['delivered']} of {m['expected']} "
          f"(missed {m['missed']}, duplicated {m['duplicated']}), {m['delivered'] / secs:.0f} deliveries/s, "
          f"CPU {p['cpu_send_drain_s']:.2f} s -> {p['cpu_per_delivery_us']:.2f} µs per delivered message; p99 {p99} ms")
if "grid -k 2" in us:
    print(f"population / grid at the same room size: rooms of 2 {us['dm'] / us['grid -k 2']:.2f}x, "
          f"rooms of 10 {us['group'] / us['grid -k 10']:.2f}x")
print(f"a room of 2,000 / rooms of 10, per delivery: {us['channel'] / us['group']:.2f}x")
PY
