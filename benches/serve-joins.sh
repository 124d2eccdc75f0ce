#!/usr/bin/env bash
# What a join costs herd serve as the rooms it holds grow, beside nginx + nchan, in one run.
#
# Each measurement opens JOIN_ROOMS fresh rooms of 2 (/conv/{conv}, so nearly every join is the
# first member of its room on its core) at CONNECT_RATE connections/s from one generator with
# source addresses 127.0.0.2-9, and reports the WebSocket upgrade time (request sent to 101
# read) p50/p99. herd serve (THREADS executors) is measured while it already holds each of HELD
# rooms of 2. The held rooms belong to a few /user/ connections (benches/hold-rooms.py; each room
# gets two members, usually on two cores), since one process cannot hold 200,000 connections
# under a 20,000 fd limit; what a join could scale with is the rooms (and presence) each core
# tracks, which is the same either way. nchan cannot hold rooms without connections: it is
# measured with none held, before and after herd.
#
# Each row is REPEAT runs (default 3): median p50, median p99, and each run's p99, since a shared
# host's noise moves single runs by several times. PERF=1 then records herd serve with perf during
# one more measurement at the largest HELD and prints its top symbols. Needs nginx + nchan and PyPI websockets (.ci/peers.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
JOIN_ROOMS=${JOIN_ROOMS:-8000}
CONNECT_RATE=${CONNECT_RATE:-10000}
HELD=${HELD:-"0 1000 10000 100000"}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-3}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
if [ -z "${HERD:-}" ]; then
  cargo build --release -q
  # A copy: a target directory shared between builds may get another build's binary meanwhile.
  cp "${CARGO_TARGET_DIR:-target}/release/herd" "$OUT/herd-joins"
fi
BIN=${HERD:-$OUT/herd-joins}

source benches/nchan-up.sh
NCHAN_ADDR=$ADDR
PIDS=()
HOLD_FDS=()
cleanup() {
  nchan_down
  for fd in "${HOLD_FDS[@]}"; do exec {fd}>&-; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

$BIN serve --listen 127.0.0.1:0 --threads "$THREADS" > "$OUT/joins-serve.log" 2>&1 &
SERVE=$!
PIDS+=($SERVE)
for _ in $(seq 200); do grep -q listening "$OUT/joins-serve.log" && break; sleep 0.05; done
HERD_ADDR=$(grep -o '127\.0\.0\.1:[0-9]*' "$OUT/joins-serve.log" | head -1)

json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {'d': d}))" "$@"; }
rooms_held() { curl -s "http://$HERD_ADDR/metrics" | sed -n 's/^herd_server_rooms //p'; }

# joins NAME URL [ARGS...]: REPEAT measurements; prints the connections joined (fewest) and the
# median upgrade p50 and p99 (ms), then each run's p99.
joins() {
  local name=$1 url=$2; shift 2
  local files=()
  for r in $(seq "$REPEAT"); do
    "$BIN" run --url "$url" --conversations "$JOIN_ROOMS" --members 2 --rate 0 --duration 1s --drain 0s \
      --connect-rate "$CONNECT_RATE" --source-ip 127.0.0.2-127.0.0.9 --quiet --out "$OUT/joins-$name-$r.json" "$@" \
      > /dev/null 2>&1 || true
    files+=("$OUT/joins-$name-$r.json")
  done
  python3 - "${files[@]}" <<'PY'
import json, statistics, sys
runs = [json.load(open(f)) for f in sys.argv[1:]]
up = [r['connect_phases']['ws_upgrade'] for r in runs]
print('%6d %11.3f %11.3f   (p99s %s)' % (min(r['connections']['established'] for r in runs),
      statistics.median(u['p50_ms'] for u in up), statistics.median(u['p99_ms'] for u in up),
      ' '.join('%.1f' % u['p99_ms'] for u in up)))
PY
}

echo "== joins: $JOIN_ROOMS rooms x 2 at $CONNECT_RATE connections/s, $REPEAT runs each; upgrade time in ms (medians)"
printf '%-28s %11s %6s %11s %11s\n' target "rooms held" joined "upgrade p50" "p99"
printf '%-28s %11s %s\n' "nginx + nchan" 0 "$(joins nchan-before "ws://$NCHAN_ADDR/conv/{conv}" --target nchan)"

held=0
for want in $HELD; do
  if [ "$want" -gt "$held" ]; then
    rm -f "$OUT/hold-$want.fifo"
    mkfifo "$OUT/hold-$want.fifo"
    python3 benches/hold-rooms.py --addr "$HERD_ADDR" --first "$held" --count $((want - held)) \
      < "$OUT/hold-$want.fifo" > "$OUT/hold-$want.log" 2>&1 &
    PIDS+=($!)
    exec {fd}> "$OUT/hold-$want.fifo"   # held open: the holder keeps its rooms until the script ends
    HOLD_FDS+=("$fd")
    for _ in $(seq 1200); do grep -q HELD "$OUT/hold-$want.log" && break; sleep 0.1; done
    grep -q HELD "$OUT/hold-$want.log" || { echo "holding $want rooms failed: $(tail -3 "$OUT/hold-$want.log")"; exit 1; }
    held=$want
  fi
  printf '%-28s %11s %s\n' "herd serve ($THREADS executors)" "$(rooms_held)" \
    "$(joins "herd-$want" "ws://$HERD_ADDR/conv/{conv}")"
done
printf '%-28s %11s %s\n' "nginx + nchan" 0 "$(joins nchan-after "ws://$NCHAN_ADDR/conv/{conv}" --target nchan)"

if [ "${PERF:-0}" = 1 ]; then
  echo "== perf: herd serve's top symbols during one more measurement with $held rooms held"
  perf record -g -p "$SERVE" -o "$OUT/joins-serve.perf" -- sleep 4 > /dev/null 2>&1 &
  perf_pid=$!
  REPEAT=1 joins perf "ws://$HERD_ADDR/conv/{conv}" > /dev/null
  wait "$perf_pid" || true
  perf report -i "$OUT/joins-serve.perf" --no-children --sort sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12 || true
fi

[ "$held" -gt 0 ] || exit 0
echo "== memory: a fresh herd serve ($THREADS executors) holding $held rooms of 2 (no other connection)"
$BIN serve --listen 127.0.0.1:0 --threads "$THREADS" > "$OUT/joins-serve-mem.log" 2>&1 &
MEM=$!
PIDS+=($MEM)
for _ in $(seq 200); do grep -q listening "$OUT/joins-serve-mem.log" && break; sleep 0.05; done
MEM_ADDR=$(grep -o '127\.0\.0\.1:[0-9]*' "$OUT/joins-serve-mem.log" | head -1)
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$MEM/status"; }
RSS0=$(rss_kb)
rm -f "$OUT/hold-mem.fifo"
mkfifo "$OUT/hold-mem.fifo"
python3 benches/hold-rooms.py --addr "$MEM_ADDR" --count "$held" < "$OUT/hold-mem.fifo" > "$OUT/hold-mem.log" 2>&1 &
PIDS+=($!)
exec {fd}> "$OUT/hold-mem.fifo"
HOLD_FDS+=("$fd")
for _ in $(seq 1200); do grep -q HELD "$OUT/hold-mem.log" && break; sleep 0.1; done
RSS1=$(rss_kb)
echo "RSS grew $(( (RSS1 - RSS0) / 1024 )) MiB for $((2 * held)) memberships in $held rooms:" \
  "$(( (RSS1 - RSS0) * 1024 / (2 * held) )) bytes per membership, room names, tables and other cores' copies included"
