#!/usr/bin/env bash
# What a sleep and wake-up costs a thread on this host, in accounted CPU, by what wakes it: its
# own timer (ppoll with a timeout) or another process's write. On some virtual machines a timer
# wake costs several times a write wake, and that decides how a generator should sleep (see
# README.md, "Efficiency", the send window).
#
#   benches/wake-cost.sh [SLEEPS] [GAP_NS]     # defaults: 5000 sleeps of 500 µs
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-../bench-out}
mkdir -p "$OUT"
cc -O2 -o "$OUT/wake-cost" wake-cost.c
"$OUT/wake-cost" "${1:-5000}" "${2:-500000}"
