#!/usr/bin/env bash
# What a busy core's wake-ups cost: run B of efficiency.sh (1,500 rooms x 10 against nginx +
# nchan, 1 msg/s per room, ~13,500 deliveries/s) with `perf stat` over 8 s in the middle of the
# send phase, counting the syscalls that make up a wake-up and the context switches; then the
# run's CPU per delivered message and latency.
#
#   benches/wake-census.sh                      # the release build
#   HERD=/path/to/other/herd benches/wake-census.sh   # another build, for a before/after
set -euo pipefail
cd "$(dirname "$0")/.."
HERD=${HERD:-target/release/herd}
OUT=${OUT:-bench-out/wake-census}
DURATION=${DURATION:-20s}
mkdir -p "$OUT"
[ -n "${SKIP_BUILD:-}" ] || [ "$HERD" != target/release/herd ] || cargo build --release -q
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
command -v perf > /dev/null || { echo "perf is needed" >&2; exit 1; }

. benches/nchan-up.sh

$HERD run --url "ws://$ADDR/conv/{conv}" --target nchan -c 1500 -k 10 --senders 1 --rate 1 --size 64 \
  --duration "$DURATION" --drain 3s --connect-rate 5000 --quiet --out "$OUT/B.json" > /dev/null &
PID=$!
sleep 8
EVENTS=task-clock,context-switches,raw_syscalls:sys_enter
for s in io_uring_enter membarrier ppoll epoll_wait epoll_ctl recvmsg sendto read timerfd_settime; do
  EVENTS="$EVENTS,syscalls:sys_enter_$s"
done
perf stat -e "$EVENTS" -p "$PID" -- sleep 8 2>&1 | grep -E 'task-clock|context-switches|sys_enter' \
  | awk '{printf "%14s  %s\n", $1, $2}'
wait "$PID"
python3 - "$OUT/B.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m, c, u = d["messages"], d["latency"]["corrected"], d["latency"]["uncorrected"]
print(f"delivered {m['delivered']} of {m['expected']} (missed {m['missed']}); "
      f"CPU {d['process']['cpu_per_delivery_us']:.2f} us/delivery; corrected p99 {c['p99_ms']} ms "
      f"p99.9 {c['p999_ms']} ms; uncorrected p99 {u['p99_ms']} ms")
PY
