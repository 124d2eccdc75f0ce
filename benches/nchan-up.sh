# Sourced by the benchmark scripts that load nginx + nchan (tests/peers/nchan.py): starts one
# nchan worker with room for 40,000 connections, stops it on exit, and sets ADDR (host:port).
# Needs OUT (where its output goes).
NCHAN_DIR=$(mktemp -d)
python3 tests/peers/nchan.py --port 0 --dir "$NCHAN_DIR" --workers 1 --worker-connections 40000 \
  --log-level error > "$OUT/nchan.out" 2> "$OUT/nchan.err" &
NCHAN=$!
nchan_down() {
  kill "$NCHAN" 2>/dev/null || true
  wait "$NCHAN" 2>/dev/null || true
  rm -rf "$NCHAN_DIR"
}
trap nchan_down EXIT
for _ in $(seq 300); do grep -q LISTENING "$OUT/nchan.out" && break; sleep 0.05; done
ADDR=$(sed -n 's/^LISTENING //p' "$OUT/nchan.out")
[ -n "$ADDR" ] || { echo "nchan did not start: $(cat "$OUT/nchan.err")" >&2; exit 1; }
