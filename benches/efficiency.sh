#!/usr/bin/env bash
# Does herd's cost per delivered message stay flat as the connections a core holds grow?
#
# Against nginx + nchan (tests/peers/nchan.py), at the same delivery rate with 10x the
# connections:
#   A: 150 rooms x 10 members, 1 sender per room at 10 msg/s  (1,500 connections)
#   B: 1,500 rooms x 10 members, 1 sender per room at 1 msg/s (15,000 connections)
# both 13,500 deliveries/s (9 receivers per message; nchan's echo to the sender is not counted).
# Prints generator CPU µs per delivered message for both and their ratio (B/A), idle CPU per
# 10,000 held connections, memory per connection on one executor against both nginx + nchan and
# herd serve (held PEAK_HOLD seconds, VmRSS at its peak and at the end of the hold), and the top
# symbols of a `perf record` of one more run B.
#
# A and B run REPEAT times each, alternating, and the figures are their medians: on a shared
# machine one run's CPU per message varies by a quarter either way.
#
#   benches/efficiency.sh                                # defaults below
#   DURATION=60s REPEAT=5 PERF=0 benches/efficiency.sh   # longer, more runs, no profile
#   ONLY=memory REPEAT=1 benches/efficiency.sh           # the memory per connection part alone
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20s}
REPEAT=${REPEAT:-3}               # runs of A and of B, alternating; medians are reported
IDLE_HOLD=${IDLE_HOLD:-30}        # seconds the idle connections are held
SIZE=${SIZE:-64}
PERF=${PERF:-1}                   # 1: profile run B with perf record -g
OUT=${OUT:-bench-out/efficiency}
HERD=${HERD:-${CARGO_TARGET_DIR:-target}/release/herd} # another build: HERD=path
ONLY=${ONLY:-all}                 # all, or memory: only the memory per connection part
PEAK_HOLD=${PEAK_HOLD:-8}         # seconds the idle connections of the memory part are held
mkdir -p "$OUT"
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q

# The machine's own limits: 15,000 connections each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

. benches/nchan-up.sh
URL="ws://$ADDR/conv/{conv}"
echo "herd: $($HERD --version 2>/dev/null || echo "$HERD"); target nginx+nchan at $ADDR; $(nproc) cores"

field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d'+sys.argv[2]))" "$@"; }

# run NAME ROOMS RATE [perf]: one message run; prints its line and keeps $OUT/NAME.json.
run() {
  local name=$1 rooms=$2 rate=$3 prof=${4:-0}
  $HERD run --url "$URL" --target nchan -c "$rooms" -k 10 --senders 1 --rate "$rate" --size "$SIZE" \
    --duration "$DURATION" --drain 5s --connect-rate 5000 --quiet --out "$OUT/$name.json" > /dev/null &
  local pid=$!
  if [ "$prof" = 1 ] && command -v perf > /dev/null; then
    # Profile 10 s in the middle of the send phase.
    sleep "$(( $(echo "$DURATION" | tr -dc 0-9) / 2 ))"
    perf record -g -o "$OUT/$name.perf.data" -p "$pid" -- sleep 10 > /dev/null 2>&1 || true
  fi
  wait "$pid"
  python3 - "$OUT/$name.json" "$name" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m, p, l = d["messages"], d["process"], d["latency"]["corrected"]
secs = d["phases"]["send_s"] + d["phases"]["drain_s"]
print(f"{sys.argv[2]}: {d['connections']['established']} connections, delivered {m['delivered']} of "
      f"{m['expected']} (missed {m['missed']}, dup {m['duplicated']}), {m['delivered']/secs:.0f}/s; "
      f"CPU {p['cpu_send_drain_s']:.2f} s -> {p['cpu_per_delivery_us']:.2f} us/delivery; "
      f"latency p50 {l['p50_ms']} ms p99 {l['p99_ms']} ms")
PY
}

if [ "$ONLY" = all ]; then
for i in $(seq "$REPEAT"); do
  echo "== A$i: 150 x 10 at 10 msg/s"
  run "A$i" 150 10
  echo "== B$i: 1500 x 10 at 1 msg/s"
  run "B$i" 1500 1
done
python3 - "$OUT" "$REPEAT" <<'PY'
import json, statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
cpu = lambda name: json.load(open(f"{out}/{name}.json"))["process"]["cpu_per_delivery_us"]
a = [cpu(f"A{i}") for i in range(1, n + 1)]
b = [cpu(f"B{i}") for i in range(1, n + 1)]
ma, mb = statistics.median(a), statistics.median(b)
fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
print(f"CPU per delivered message, median of {n}: A {ma:.2f} us ({fmt(a)}), B {mb:.2f} us ({fmt(b)}), ratio B/A {mb/ma:.2f}")
PY

echo "== idle: 1500 x 10 held for ${IDLE_HOLD}s"
$HERD run --url "$URL" --target nchan -c 1500 -k 10 --rate 0 --duration "${IDLE_HOLD}s" --drain 0s \
  --connect-rate 5000 --quiet --out "$OUT/idle.json" > /dev/null
python3 - "$OUT/idle.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p, n = d["process"], d["connections"]["established"]
hold = d["phases"]["send_s"] + d["phases"]["drain_s"]
share = p["cpu_send_drain_s"] / hold * 100
print(f"idle: {n} connections held {hold:.1f} s, CPU {p['cpu_send_drain_s']:.3f} s = {share:.2f} % of one core, "
      f"{share * 10000 / max(n, 1):.2f} % of one core per 10,000 connections")
PY
fi

# A herd serve on one executor, the second target of the memory part; stopped on exit.
"$HERD" serve --listen 127.0.0.1:0 --threads 1 > "$OUT/serve.out" 2> "$OUT/serve.err" &
SERVE=$!
trap 'kill "$SERVE" 2>/dev/null || true; wait "$SERVE" 2>/dev/null || true; nchan_down' EXIT
for _ in $(seq 300); do grep -q listening "$OUT/serve.out" && break; sleep 0.05; done
SERVE_ADDR=$(grep -o '127.0.0.1:[0-9]*' "$OUT/serve.out" | head -1)
[ -n "$SERVE_ADDR" ] || { echo "herd serve did not start: $(cat "$OUT/serve.err")" >&2; exit 1; }

echo "== memory: one executor, --connect-rate 20000, 1k and 15k idle connections held ${PEAK_HOLD}s ($REPEAT times per target)"
# mem TARGET_URL PRESET ROOMS NAME: prints "peak connected end" RSS in bytes of herd run: VmHWM
# (in-flight handshakes included), VmRSS once every connection was open, and VmRSS at the end
# (after the hold and the closes).
mem() {
  $HERD run --url "$1" --target "$2" -c "$3" -k 10 --rate 0 --duration "${PEAK_HOLD}s" --drain 0s --threads 1 \
    --connect-rate 20000 --quiet --out "$OUT/$4.json" > /dev/null
  python3 -c "import json,sys; p=json.load(open(sys.argv[1]))['process']; print(p['rss_peak_bytes'], p['rss_connected_bytes'], p['rss_end_bytes'])" "$OUT/$4.json"
}
for target in "nchan ws://$ADDR/conv/{conv}" "herd ws://$SERVE_ADDR/conv/{conv}"; do
  set -- $target
  name=$1 url=$2
  per_conn=()
  for i in $(seq "$REPEAT"); do
    read -r p1 c1 e1 <<< "$(mem "$url" "$name" 100 "mem-$name-1k-$i")"
    read -r p15 c15 e15 <<< "$(mem "$url" "$name" 1500 "mem-$name-15k-$i")"
    per_conn+=("$(python3 -c "print(($p15 - $p1) / 14000)")")
    python3 -c "p1, p15, c1, c15, e1, e15 = $p1, $p15, $c1, $c15, $e1, $e15; print(f'$name: peak RSS 1k {p1/1048576:.1f} MiB, 15k {p15/1048576:.1f} MiB -> {(p15 - p1) / 14000:.0f} B per connection at peak, {(c15 - c1) / 14000:.0f} B once connected, {(e15 - e1) / 14000:.0f} B at the end')"
  done
  python3 -c "import statistics, sys; xs = [float(x) for x in sys.argv[1:]]; print(f'$name: peak per connection, median of {len(xs)}: {statistics.median(xs):.0f} B')" "${per_conn[@]}"
done

if [ "$PERF" = 1 ] && command -v perf > /dev/null; then
  echo "== perf: one more run B, profiled for 10 s"
  run Bperf 1500 1 1
  echo "== perf: top symbols of run B (self time)"
  perf report -i "$OUT/Bperf.perf.data" --no-children --sort sym --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | head -15
fi
