#!/usr/bin/env bash
# Builds the frontend fuzzer (libFuzzer + AddressSanitizer) and runs it.
#
#   Tools/fuzz/run.sh [SECONDS]        # default 600
#
# The fuzzer compiles raw inputs and mutated copies of Models/*.graph, and traps when a
# rejected input's diagnostic is not "<file>:<line>:<col>: error: ..." inside the text, or
# when an accepted graph fails to verify or to round-trip through the printer. -timeout=5
# turns a hang into a failure. Crashing inputs land in .build-fuzz/artifacts/; replay one with
#   .build-fuzz/fuzz-frontend .build-fuzz/artifacts/crash-...
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${1:-600}"
OUT=.build-fuzz
mkdir -p "$OUT/corpus" "$OUT/artifacts"

swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name FuzzFrontend \
    Sources/GraphIR/*.swift Sources/Frontend/*.swift Tools/fuzz/Harness.swift Tools/fuzz/Mutator.swift \
    -o "$OUT/fuzz-frontend"

cp Models/*.graph "$OUT/corpus/"
SWIFT_BACKTRACE=enable=no FERGC_FUZZ_MODELS=Models exec "$OUT/fuzz-frontend" "$OUT/corpus" \
    -max_total_time="$DURATION" -timeout=5 -rss_limit_mb=2048 -max_len=16384 \
    -dict=Tools/fuzz/graph.dict -artifact_prefix="$OUT/artifacts/" -print_final_stats=1
