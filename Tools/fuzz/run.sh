#!/usr/bin/env bash
# Builds one fuzz target (libFuzzer + AddressSanitizer, swiftc -sanitize=fuzzer,address) and
# runs it.
#
#   Tools/fuzz/run.sh TARGET [SECONDS]     # TARGET: frontend plan npz csv pgm; default 600 s
#   Tools/fuzz/run.sh [SECONDS]            # the frontend target (as before)
#
# Targets (harnesses in Tools/fuzz/, invariants in each file's comment):
#   frontend  the graph language (Harness.swift, Mutator.swift): diagnostics and round trip
#   plan      the .plan loader and validator, then a session on small accepted plans
#   npz       the .npz/.npy readers, with a write/read round trip of accepted archives
#   csv       the FER2013 CSV reader (plain and gzip, strict and --skip-bad-rows)
#   pgm       the PGM decoder of fergc predict
# Seeds: Tools/fuzz/corpus/TARGET (committed, small), copied into .build-fuzz/corpus-TARGET,
# which keeps growing across runs. -timeout turns a hang into a failure, -rss_limit_mb an
# absurd allocation. Crashing inputs land in .build-fuzz/artifacts-TARGET/; replay one with
#   .build-fuzz/fuzz-TARGET .build-fuzz/artifacts-TARGET/crash-...
# Tools/fuzz/nightly.sh runs every target for a budget and reports executions and crashes.
set -euo pipefail
cd "$(dirname "$0")/../.."
PATH=/opt/swift/usr/bin:$PATH
TARGET="${1:-frontend}"
if [[ "$TARGET" =~ ^[0-9]+$ ]]; then DURATION="$TARGET"; TARGET=frontend; else DURATION="${2:-600}"; fi
OUT=.build-fuzz
mkdir -p "$OUT/corpus-$TARGET" "$OUT/artifacts-$TARGET" "$OUT/modules"
BIN="$OUT/fuzz-$TARGET"

# The C kernels, instrumented (per target: targets may build at the same time), and a module
# map for them (SwiftPM makes one in package builds).
CK="$OUT/ckernels-$TARGET"
c_objects() {
    mkdir -p "$CK"
    for c in Sources/CKernels/*.c; do
        clang -O1 -g -fsanitize=address,fuzzer-no-link -fPIC -pthread -ISources/CKernels/include \
            -c "$c" -o "$CK/$(basename "$c" .c).o"
    done
    printf 'module CKernels {\n    header "%s/Sources/CKernels/include/ckernels.h"\n    export *\n}\n' "$PWD" > "$OUT/modules/module.modulemap.tmp"
    mv "$OUT/modules/module.modulemap.tmp" "$OUT/modules/module.modulemap"
}
BLAS_CFLAGS=$(pkg-config --cflags openblas 2>/dev/null || echo "-I/usr/include/x86_64-linux-gnu/openblas-pthread")
SWIFTC=(swiftc -sanitize=fuzzer,address -parse-as-library -O -g)
C_FLAGS=(-I "$OUT/modules" -I Sources/COpenBLAS -I Sources/CZlib -Xcc "$BLAS_CFLAGS")
C_LIBS=(-lopenblas -lz -lpthread -lm)
EXTRA=()
case "$TARGET" in
frontend)
    "${SWIFTC[@]}" -module-name FuzzFrontend Sources/GraphIR/*.swift Sources/Frontend/*.swift \
        Tools/fuzz/Harness.swift Tools/fuzz/Mutator.swift -o "$BIN"
    cp Models/*.graph "$OUT/corpus-$TARGET/"
    EXTRA=(-dict=Tools/fuzz/graph.dict -max_len=16384)
    export FERGC_FUZZ_MODELS=Models ;;
plan)
    c_objects
    "${SWIFTC[@]}" -module-name Runtime "${C_FLAGS[@]}" Sources/Runtime/*.swift Tools/fuzz/targets/PlanHarness.swift \
        "$CK"/*.o "${C_LIBS[@]}" -o "$BIN"
    EXTRA=(-max_len=65536) ;;
npz)
    c_objects
    "${SWIFTC[@]}" -module-name Runtime "${C_FLAGS[@]}" Sources/Runtime/*.swift Sources/NumPyIO/*.swift \
        Tools/fuzz/targets/NPZHarness.swift "$CK"/*.o "${C_LIBS[@]}" -o "$BIN"
    EXTRA=(-max_len=65536) ;;
csv)
    c_objects
    "${SWIFTC[@]}" -module-name Runtime "${C_FLAGS[@]}" Sources/Runtime/*.swift Sources/Training/FER2013.swift \
        Tools/fuzz/targets/CSVHarness.swift "$CK"/*.o "${C_LIBS[@]}" -o "$BIN"
    EXTRA=(-max_len=65536) ;;
pgm)
    "${SWIFTC[@]}" -module-name FuzzPGM Sources/Training/PGM.swift Tools/fuzz/targets/PGMHarness.swift -o "$BIN"
    EXTRA=(-max_len=8192) ;;
*)
    echo "unknown fuzz target '$TARGET' (frontend plan npz csv pgm)" >&2; exit 2 ;;
esac
if [ -d "Tools/fuzz/corpus/$TARGET" ]; then cp Tools/fuzz/corpus/"$TARGET"/* "$OUT/corpus-$TARGET/"; fi
SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 exec "$BIN" "$OUT/corpus-$TARGET" \
    -max_total_time="$DURATION" -timeout=10 -rss_limit_mb=2048 "${EXTRA[@]}" \
    -artifact_prefix="$OUT/artifacts-$TARGET/" -print_final_stats=1
