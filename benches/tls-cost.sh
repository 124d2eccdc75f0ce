#!/usr/bin/env bash
# What TLS costs the generator: user-space memory per idle wss:// connection next to ws://, and
# CPU per delivered message over wss:// next to ws:// at the same load, both against separate
# `herd serve` processes on loopback (one plain, one with a self-signed certificate). Also the
# connect time broken down (TCP, TLS handshake, WebSocket upgrade).
#
#   benches/tls-cost.sh
#   IDLE_CONNS=10000 RATE_CONVS=500 benches/tls-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE_CONNS=${IDLE_CONNS:-10000}        # connections held idle for the memory figure
IDLE_HOLD=${IDLE_HOLD:-3s}
IDLE_RATE=${IDLE_RATE:-1k}             # connect rate for the memory figure (see benches/README.md)
RATE_CONVS=${RATE_CONVS:-1000}         # conversations for the CPU figure (4 members each)
RATE=${RATE:-5}                        # 1000 x 5 x 3 = 15k deliveries/s
RATE_DURATION=${RATE_DURATION:-15s}
OUT=${OUT:-bench-out}
mkdir -p "$OUT"

cargo build --release -q
BIN=target/release/herd
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

serve() { # serve LOG [ARGS...] -> prints the address
  local log=$1; shift
  $BIN serve --listen 127.0.0.1:0 "$@" > "$log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 200); do grep -q listening "$log" && break; sleep 0.05; done
  grep -o '127\.0\.0\.1:[0-9]*' "$log" | head -1
}
PLAIN=$(serve "$OUT/serve-ws.log")
TLS=$(serve "$OUT/serve-wss.log" --tls-self-signed "$OUT/serve-cert.pem")

report() { python3 - "$@" <<'PY'
import json, sys
kind, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
c, p = d["connections"], d["process"]
if kind == "idle":
    ph = d["connect_phases"]
    parts = ", ".join(f"{k} p50 {v['p50_ms']} ms" for k, v in ph.items() if v["count"])
    t = d.get("tls") or {}
    resumed = f", {t['resumed']} of {t['handshakes']} handshakes resumed" if t else ""
    print(f"  {d['target'][:3]}: established {c['established']}, {p['rss_per_connection_bytes']:.0f} B/connection{resumed}; {parts}")
else:
    m = d["messages"]
    print(f"  {d['target'][:3]}: delivered {m['delivered']} of {m['expected']} (missed {m['missed']}), "
          f"CPU {p['cpu_send_drain_s']:.2f} s -> {p['cpu_per_delivery_us']:.2f} µs per delivery; "
          f"latency p50 {d['latency']['corrected']['p50_ms']} ms p99 {d['latency']['corrected']['p99_ms']} ms")
PY
}
ratio() { python3 -c "import json,sys; a,b=(json.load(open(f))['process'][sys.argv[3]] for f in sys.argv[1:3]); print(f'{b/a:.2f}')" "$@"; }

echo "== memory: $IDLE_CONNS idle connections held for $IDLE_HOLD, connected at $IDLE_RATE/s"
for s in ws wss wss-full; do
  addr=$PLAIN; extra=()
  [ $s = wss ] && { addr=$TLS; extra=(--ca "$OUT/serve-cert.pem"); }
  [ $s = wss-full ] && { addr=$TLS; extra=(--ca "$OUT/serve-cert.pem" --no-tls-resume); }
  $BIN run --url "${s%-full}://$addr/conv/{conv}" "${extra[@]}" --conversations $((IDLE_CONNS / 5)) --members 5 \
    --rate 0 --duration "$IDLE_HOLD" --drain 0s --connect-rate "$IDLE_RATE" --quiet --out "$OUT/tls-idle-$s.json" > /dev/null
  printf '%s' "$([ $s = wss-full ] && echo '  (--no-tls-resume)')"
  report idle "$OUT/tls-idle-$s.json"
done
echo "  wss/ws memory per connection: $(ratio "$OUT/tls-idle-ws.json" "$OUT/tls-idle-wss-full.json" rss_per_connection_bytes)x (full handshakes)"

echo "== CPU: $RATE_CONVS conversations x 4 members, 1 sender at $RATE/s for $RATE_DURATION"
for s in ws wss; do
  addr=$PLAIN; extra=()
  [ $s = wss ] && { addr=$TLS; extra=(--ca "$OUT/serve-cert.pem"); }
  $BIN run --url "$s://$addr/conv/{conv}" "${extra[@]}" --conversations "$RATE_CONVS" --members 4 --rate "$RATE" \
    --duration "$RATE_DURATION" --quiet --out "$OUT/tls-rate-$s.json" > /dev/null
  report rate "$OUT/tls-rate-$s.json"
done
echo "  wss/ws CPU per delivered message: $(ratio "$OUT/tls-rate-ws.json" "$OUT/tls-rate-wss.json" cpu_per_delivery_us)x"
