#!/usr/bin/env bash
# What herd costs: user-space memory per idle connection, and CPU per delivered message at a
# steady ~15k deliveries/s, against a separate `herd serve` on loopback (so the generator's own
# process is measured alone). Prints the figures and keeps the JSON results in $OUT.
#
#   benches/run-cost.sh                 # defaults below
#   IDLE_CONNS=15000 RATE_CONVS=1000 benches/run-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE_CONNS=${IDLE_CONNS:-15000}        # connections held idle for the memory figure
IDLE_HOLD=${IDLE_HOLD:-5s}
RATE_CONVS=${RATE_CONVS:-1000}         # conversations for the CPU figure (4 members each)
RATE=${RATE:-5}                        # messages/s per sender: 1000 x 5 x 3 = 15k deliveries/s
RATE_DURATION=${RATE_DURATION:-20s}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"

cargo build --release -q
BIN=target/release/herd

$BIN serve --listen 127.0.0.1:0 > "$OUT/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; wait $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$OUT/serve.log" && break; sleep 0.05; done
ADDR=$(grep -o '127\.0\.0\.1:[0-9]*' "$OUT/serve.log" | head -1)
URL="ws://$ADDR/conv/{conv}?user={user}"

field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval('d'+sys.argv[2]))" "$@"; }

echo "== idle: $IDLE_CONNS connections held for $IDLE_HOLD"
$BIN run --url "$URL" --conversations $((IDLE_CONNS / 5)) --members 5 --rate 0 \
  --duration "$IDLE_HOLD" --quiet --out "$OUT/idle.json" > /dev/null
est=$(field "$OUT/idle.json" "['connections']['established']")
per=$(field "$OUT/idle.json" "['process']['rss_per_connection_bytes']")
printf 'established %s; generator user-space memory per idle connection: %.0f bytes (RSS growth while connecting)\n' "$est" "$per"
printf 'connect: p50 %s ms, p99 %s ms; connect phase %.2f s (%.0f connections/s over %s cores)\n' \
  "$(field "$OUT/idle.json" "['connect']['p50_ms']")" "$(field "$OUT/idle.json" "['connect']['p99_ms']")" \
  "$(field "$OUT/idle.json" "['phases']['connect_s']")" \
  "$(python3 -c "import json; d=json.load(open('$OUT/idle.json')); print(d['connections']['established']/d['phases']['connect_s'])")" \
  "$(field "$OUT/idle.json" "['scenario']['cores'].__len__()")"
grep -E '^(TCP|sockets)' /proc/net/sockstat | tr '\n' ' '; echo

echo "== messages: $RATE_CONVS conversations x 4 members, 1 sender at $RATE/s for $RATE_DURATION"
$BIN run --url "$URL" --conversations "$RATE_CONVS" --members 4 --rate "$RATE" \
  --duration "$RATE_DURATION" --quiet --out "$OUT/rate.json" > /dev/null
python3 - "$OUT/rate.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m, p = d["messages"], d["process"]
secs = d["phases"]["send_s"] + d["phases"]["drain_s"]
print(f"delivered {m['delivered']} of {m['expected']} expected (missed {m['missed']}), "
      f"{m['delivered']/secs:.0f} deliveries/s")
print(f"generator CPU while sending: {p['cpu_send_drain_s']:.2f} s -> "
      f"{p['cpu_per_delivery_us']:.2f} µs per delivered message, "
      f"{p['cpu_per_delivery_us']:.2f} s per million deliveries")
lat = d["latency"]["corrected"]
print(f"latency corrected p50 {lat['p50_ms']} ms p99 {lat['p99_ms']} ms max {lat['max_ms']} ms")
PY
