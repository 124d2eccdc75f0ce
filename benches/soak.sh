#!/usr/bin/env bash
# Soak test of herd run's memory: one long run against a separate `herd serve` on loopback,
# sampling the generator's resident memory (VmRSS from /proc) every few seconds. Prints the
# first (after warm-up), last and largest sample and the growth, and fails if the growth is
# over SOAK_MAX_GROWTH_PCT. Everything it starts, it stops.
#
#   benches/soak.sh                          # 10 minutes, the defaults below
#   SOAK_DURATION=120 benches/soak.sh        # a 2-minute run
#
# Settings (environment):
#   SOAK_DURATION        seconds of sending                      [600]
#   SOAK_SAMPLE          seconds between RSS samples             [10]
#   SOAK_WARMUP          seconds before the baseline sample      [20]
#   SOAK_CONVERSATIONS   conversations                           [500]
#   SOAK_MEMBERS         members per conversation                [4]
#   SOAK_SENDERS         senders per conversation                [1]
#   SOAK_RATE            messages/s per sender                   [10]
#   SOAK_SIZE            message bytes                           [128]
#   SOAK_THREADS         generator executors                     [1]
#   SOAK_SERVER_THREADS  server executors                        [1]
#   SOAK_MAX_GROWTH_PCT  allowed growth, last vs baseline, in %  [10]
#   SOAK_PROFILE         cargo profile to build                  [release]
set -euo pipefail

DURATION=${SOAK_DURATION:-600}
SAMPLE=${SOAK_SAMPLE:-10}
WARMUP=${SOAK_WARMUP:-20}
CONVS=${SOAK_CONVERSATIONS:-500}
MEMBERS=${SOAK_MEMBERS:-4}
SENDERS=${SOAK_SENDERS:-1}
RATE=${SOAK_RATE:-10}
SIZE=${SOAK_SIZE:-128}
THREADS=${SOAK_THREADS:-1}
SERVER_THREADS=${SOAK_SERVER_THREADS:-1}
MAX_GROWTH_PCT=${SOAK_MAX_GROWTH_PCT:-10}
PROFILE=${SOAK_PROFILE:-release}

cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --profile "$PROFILE" -j2 --bin herd >&2
HERD="$TARGET/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/herd"

WORK=$(mktemp -d)
SERVE_PID=""
RUN_PID=""
cleanup() {
    [ -n "$RUN_PID" ] && kill "$RUN_PID" 2>/dev/null || true
    [ -n "$SERVE_PID" ] && kill -TERM "$SERVE_PID" 2>/dev/null || true
    [ -n "$SERVE_PID" ] && wait "$SERVE_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$HERD" serve --listen 127.0.0.1:0 -t "$SERVER_THREADS" >"$WORK/serve.out" 2>/dev/null &
SERVE_PID=$!
for _ in $(seq 100); do
    grep -q "listening on" "$WORK/serve.out" 2>/dev/null && break
    sleep 0.1
done
ADDR=$(grep -o '127\.0\.0\.1:[0-9]*' "$WORK/serve.out" | head -1)
[ -n "$ADDR" ] || { echo "soak: herd serve did not start" >&2; exit 1; }

"$HERD" run --url "ws://$ADDR/conv/{conv}?user={user}" -c "$CONVS" -k "$MEMBERS" --senders "$SENDERS" \
    --rate "$RATE" --size "$SIZE" -t "$THREADS" -d "${DURATION}s" --drain 5s -q --out "$WORK/results.json" \
    >"$WORK/summary.txt" 2>"$WORK/run.err" &
RUN_PID=$!
echo "soak: $((CONVS * MEMBERS)) connections, $((CONVS * SENDERS)) senders at $RATE/s, ${SIZE} B, ${DURATION}s against $ADDR (pid $RUN_PID)"

START=$(date +%s)
FIRST="" LAST="" MAX=0
while kill -0 "$RUN_PID" 2>/dev/null; do
    RSS=$(awk '/^VmRSS:/ {print $2}' "/proc/$RUN_PID/status" 2>/dev/null || true)
    if [ -n "$RSS" ]; then
        T=$(( $(date +%s) - START ))
        echo "t=${T}s rss=${RSS} KiB"
        if [ "$T" -ge "$WARMUP" ] && [ -z "$FIRST" ]; then FIRST=$RSS; fi
        if [ -n "$FIRST" ]; then LAST=$RSS; fi
        [ "$RSS" -gt "$MAX" ] && MAX=$RSS
    fi
    sleep "$SAMPLE"
done
wait "$RUN_PID" || true
RUN_PID=""

cat "$WORK/summary.txt"
if [ -z "$FIRST" ] || [ -z "$LAST" ]; then
    echo "soak: the run ended before the warm-up was over; no growth figure" >&2
    exit 1
fi
GROWTH=$((LAST - FIRST))
PCT=$(awk -v f="$FIRST" -v g="$GROWTH" 'BEGIN { printf "%.1f", 100 * g / f }')
echo "soak: rss first ${FIRST} KiB (t>=${WARMUP}s)  last ${LAST} KiB  max ${MAX} KiB  growth ${GROWTH} KiB (${PCT}%)"
if awk -v p="$PCT" -v m="$MAX_GROWTH_PCT" 'BEGIN { exit !(p > m) }'; then
    echo "soak: FAIL: growth ${PCT}% over ${MAX_GROWTH_PCT}%" >&2
    exit 1
fi
echo "soak: ok"
