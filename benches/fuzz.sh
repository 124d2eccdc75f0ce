#!/usr/bin/env bash
# herd's fuzzing, for a bounded time: the property tests of every parser (tests/fuzz_parsers.rs,
# and the permessage-deflate read path in tests/fuzz_deflate.rs)
# and of herd serve's HTTP and frame handling (tests/fuzz_server.rs) with many more cases than
# `cargo test` runs, and the network fuzzer of herd run's frame handling (tests/fuzz_client.rs)
# over several seeds. Each suite is cut off after FUZZ_SECS; a cut-off counts as a failure.
#
#   benches/fuzz.sh
#   FUZZ_PARSER_CASES=100000 FUZZ_SECS=1200 benches/fuzz.sh
#
# Settings (environment):
#   FUZZ_SECS           time limit per suite, seconds            [600]
#   FUZZ_PARSER_CASES   cases per parser property                [20000]
#   FUZZ_SERVER_CASES   cases per server property                [2000]
#   FUZZ_CLIENT_SEEDS   client fuzzer runs (seeds 1..N)          [5]
#   FUZZ_CLIENT_CONVS   conversations (random streams) per run   [100]
#   FUZZ_CLIENT_SECS    seconds of sending per run               [10]
set -euo pipefail

SECS=${FUZZ_SECS:-600}
PARSER_CASES=${FUZZ_PARSER_CASES:-20000}
SERVER_CASES=${FUZZ_SERVER_CASES:-2000}
CLIENT_SEEDS=${FUZZ_CLIENT_SEEDS:-5}
CLIENT_CONVS=${FUZZ_CLIENT_CONVS:-100}
CLIENT_SECS=${FUZZ_CLIENT_SECS:-10}

cd "$(dirname "$0")/.."
cargo test --release -j2 --no-run --test fuzz_parsers --test fuzz_deflate --test fuzz_server --test fuzz_client >&2

suite() {
    local name=$1
    shift
    local t0=$SECONDS
    if timeout "$SECS" "$@" cargo test --release -j2 -q --test "$name" -- --test-threads 2 >&2; then
        echo "fuzz: $name ok in $((SECONDS - t0))s"
    else
        echo "fuzz: $name FAILED (or hit the ${SECS}s limit) after $((SECONDS - t0))s"
        exit 1
    fi
}

echo "fuzz: parsers, $PARSER_CASES cases per property"
suite fuzz_parsers env HERD_FUZZ_CASES="$PARSER_CASES"
suite fuzz_deflate env HERD_FUZZ_CASES="$PARSER_CASES"
echo "fuzz: herd serve, $SERVER_CASES cases per property"
suite fuzz_server env HERD_FUZZ_CASES="$SERVER_CASES"
for seed in $(seq 1 "$CLIENT_SEEDS"); do
    echo "fuzz: herd run frame handling, seed $seed, $CLIENT_CONVS random streams for ${CLIENT_SECS}s"
    suite fuzz_client env HERD_FUZZ_SEED="$seed" HERD_FUZZ_CONVS="$CLIENT_CONVS" HERD_FUZZ_SECS="$CLIENT_SECS"
done
echo "fuzz: all suites passed"
