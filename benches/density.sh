#!/usr/bin/env bash
# Connection density on loopback:
#  1. memory: IDLE_CONNS idle connections in one generator process (herd ceiling, one step):
#     generator user-space bytes per connection and kernel slab bytes per connection;
#  2. establishment rate: connections per second per core with source addresses spread;
#  3. beyond the ephemeral port range: two generator processes (fd limit 20k each) hold more than
#     the 28k ports one source address has, to ONE destination ip:port, served by two
#     `herd serve` processes sharing the port with SO_REUSEPORT.
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE_CONNS=${IDLE_CONNS:-15000}
RATE_CONNS=${RATE_CONNS:-15000}
PER_GEN=${PER_GEN:-15000}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
cargo build --release -q
BIN=target/release/herd
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

serve() { # serve LOG [ARGS...] -> prints the address
  local log=$1; shift
  $BIN serve "$@" > "$log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do grep -q listening "$log" && break; sleep 0.05; done
  grep -o '127\.0\.0\.1:[0-9]*' "$log" | head -1
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {'d': d}))" "$@"; }

ADDR=$(serve "$OUT/serve1.log" --listen 127.0.0.1:0)
URL="ws://$ADDR/conv/{conv}?user={user}"

echo "== 1. memory: $IDLE_CONNS idle connections in one process"
$BIN ceiling --url "$URL" --step "$IDLE_CONNS" --max "$IDLE_CONNS" --hold 2s --source-ip 127.0.0.2-127.0.0.9 \
  --quiet --out "$OUT/density.json" > /dev/null
json "$OUT/density.json" "f\"held {d['highest_stable']} ({d['stopped_by']}); generator user space {d['user_bytes_per_connection']:.0f} B/connection; kernel slab {d['kernel_slab_bytes_per_connection']:.0f} B/connection (both ends)\""
json "$OUT/density.json" "d['sockstat']"

echo "== 2. establishment: $RATE_CONNS connections, source addresses spread, no rate cap"
# The generator on its own core (the last one), a one-executor server on core 0, so that the
# figure is per generator core; on a single-core host both share it.
LAST_CORE=$(( $(nproc) - 1 ))
ADDR1=$(serve "$OUT/serve-rate.log" --listen 127.0.0.1:0 --threads 1)
$BIN run --url "ws://$ADDR1/conv/{conv}" --conversations $((RATE_CONNS / 5)) --members 5 --rate 0 --duration 1s \
  --drain 0s --connect-rate 10m --source-ip 127.0.0.2-127.0.0.9 --cores "$LAST_CORE" --quiet --out "$OUT/connect.json" > /dev/null
json "$OUT/connect.json" "f\"{d['connections']['established']} established in {d['phases']['connect_s']:.2f} s: {d['connections']['established']/d['phases']['connect_s']:.0f} connections/s on one generator core (server on another); connect p50 {d['connect']['p50_ms']} ms p99 {d['connect']['p99_ms']} ms\""

echo "== 3. beyond one source address's ports: 2 x $PER_GEN connections to one ip:port"
ADDR2=$(serve "$OUT/serve2.log" --listen "$ADDR")   # a second server process on the same port
[ "$ADDR2" = "$ADDR" ] || { echo "second server did not share $ADDR"; exit 1; }
PORT=${ADDR##*:}
run_gen() { # run_gen NAME SOURCES
  $BIN run --url "ws://$ADDR/conv/$1{conv}" --conversations $((PER_GEN / 5)) --members 5 --rate 0 --duration 8s \
    --drain 0s --connect-rate 20k --source-ip "$2" --quiet --out "$OUT/gen-$1.json" > /dev/null &
  PIDS+=($!)
}
run_gen a 127.0.0.2-127.0.0.9
run_gen b 127.0.0.10-127.0.0.17
peak=0
for _ in $(seq 60); do
  n=$(python3 - "$PORT" <<'PY'
import sys
port = int(sys.argv[1])
n = 0
for line in open("/proc/net/tcp").readlines()[1:]:
    f = line.split()
    if f[3] == "01" and int(f[2].split(":")[1], 16) == port:
        n += 1
print(n)
PY
)
  [ "$n" -gt "$peak" ] && peak=$n
  [ "$peak" -ge $((2 * PER_GEN)) ] && break
  sleep 0.25
done
wait "${PIDS[-1]}" "${PIDS[-2]}" || true
echo "peak established client connections to 127.0.0.1:$PORT: $peak (one source address has $(awk '{print $2-$1+1}' /proc/sys/net/ipv4/ip_local_port_range) ports)"
for g in a b; do json "$OUT/gen-$g.json" "f\"generator $g: {d['connections']['established']} established, {d['connections']['failed']} failed, peak open {d['connections']['peak_open']}\""; done
