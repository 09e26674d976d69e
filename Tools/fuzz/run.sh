#!/usr/bin/env bash
# Builds one fuzz target (libFuzzer + AddressSanitizer, swiftc -sanitize=fuzzer,address) and
# runs it.
#
#   Tools/fuzz/run.sh TARGET [SECONDS]     # TARGET: frontend plan npz csv pgm jpeg png cascade onnx events; default 600 s
#   Tools/fuzz/run.sh [SECONDS]            # the frontend target (as before)
#
# Targets (harnesses in Tools/fuzz/, invariants in each file's comment):
#   frontend  the graph language (Harness.swift, Mutator.swift): diagnostics and round trip
#   plan      the .plan loader and validator, then a session on small accepted plans
#   npz       the .npz/.npy readers, with a write/read round trip of accepted archives
#   csv       the FER2013 CSV reader (plain and gzip, strict and --skip-bad-rows, small reads)
#   pgm       ImageIO's PGM/PPM decoder (P5/P6; what fergc predict and detect read)
#   jpeg      ImageIO's JPEG decoder (TurboJPEG; the library itself is not instrumented)
#   png       ImageIO's PNG decoder (libpng; the library itself is not instrumented)
#   cascade   the Haar cascade reader (Vision's XML parser and HaarCascade), then a detection
#   onnx      the .onnx reader (protobuf decoding), its encoder round trip, and the importer
#   events    a run's event log (events.jsonl) as the report's segments table reads it
# The frontend target is built without AddressSanitizer (coverage only): the frontend and
# GraphIR are safe Swift with no unsafe pointers on the fuzzed path (bounds and overflow trap
# by themselves), and ASan made each execution about 3x slower.
# FUZZ_RUNS=N stops after N executions if that comes before SECONDS (a slow target's 10^6).
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
rm -f "$OUT/modules/module.modulemap"  # older builds kept CKernels' map here, now in modules/CKernels
BIN="$OUT/fuzz-$TARGET"

# The C kernels, instrumented (per target: targets may build at the same time), and a module
# map for them (SwiftPM makes one in package builds).
CK="$OUT/ckernels-$TARGET"
c_objects() {  # [C target, default CKernels]
    local lib="${1:-CKernels}" header
    header=$(basename Sources/"$lib"/include/*.h)
    rm -rf "$CK/$lib"
    rm -f "$CK"/*.o  # objects of older builds, kept loose in $CK
    mkdir -p "$CK/$lib" "$OUT/modules/$lib"
    for c in Sources/"$lib"/*.c; do
        clang -O1 -g -fsanitize=address,fuzzer-no-link -fPIC -pthread -ISources/"$lib"/include \
            -c "$c" -o "$CK/$lib/$(basename "$c" .c).o"
    done
    printf 'module %s {\n    header "%s/Sources/%s/include/%s"\n    export *\n}\n' "$lib" "$PWD" "$lib" "$header" > "$OUT/modules/$lib/module.modulemap.tmp"
    mv "$OUT/modules/$lib/module.modulemap.tmp" "$OUT/modules/$lib/module.modulemap"
}
# One Swift module of the package, instrumented, as an object and a .swiftmodule in $LIB (for
# targets whose sources import several modules: ImageIO imports Vision and Runtime). Shared by
# the targets and rebuilt when a source is newer (so do not build two such targets at once).
LIB="$OUT/lib"
swift_module() {  # NAME SOURCES...
    local name="$1"; shift
    mkdir -p "$LIB"
    local f
    if [ -f "$LIB/$name.o" ]; then
        for f in "$@"; do [ "$f" -nt "$LIB/$name.o" ] && rm -f "$LIB/$name.o"; done
    fi
    [ -f "$LIB/$name.o" ] && return 0
    "${SWIFTC[@]}" -wmo -c -emit-module -emit-module-path "$LIB/$name.swiftmodule" -module-name "$name" \
        -I "$LIB" "${C_FLAGS[@]}" "$@" -o "$LIB/$name.o.tmp"
    mv "$LIB/$name.o.tmp" "$LIB/$name.o"
}
BLAS_CFLAGS=$(pkg-config --cflags openblas 2>/dev/null || echo "-I/usr/include/x86_64-linux-gnu/openblas-pthread")
SWIFTC=(swiftc -sanitize=fuzzer,address -parse-as-library -O -g)
PNG_CFLAGS=$(pkg-config --cflags libpng 2>/dev/null || echo "-I/usr/include/libpng16")
C_FLAGS=(-I "$OUT/modules/CKernels" -I "$OUT/modules/CVision" -I Sources/COpenBLAS -I Sources/CZlib
    -I Sources/CPNG -I Sources/CTurboJPEG -Xcc "$BLAS_CFLAGS" -Xcc "$PNG_CFLAGS")
C_LIBS=(-lopenblas -lz -lpthread -lm)
EXTRA=()
# A binary newer than every source, harness and this script is reused (FUZZ_REBUILD=1 forces
# a build): instrumented builds take minutes.
fresh() {
    [ -x "$BIN" ] && [ "${FUZZ_REBUILD:-0}" != 1 ] &&
        [ -z "$(find Sources Tools/fuzz -newer "$BIN" \( -name '*.swift' -o -name '*.c' -o -name '*.h' -o -name '*.sh' \) -print -quit)" ]
}
if fresh; then
    echo "fuzz: reusing $BIN (newer than the sources)"
    TARGET_BUILT=1
fi
case "${TARGET_BUILT:+skip}$TARGET" in
skip*)
    case "$TARGET" in
    frontend) EXTRA=(-dict=Tools/fuzz/graph.dict -max_len=16384); cp Models/*.graph "$OUT/corpus-$TARGET/"; export FERGC_FUZZ_MODELS=Models ;;
    plan|npz) EXTRA=(-max_len=65536) ;;
    *) EXTRA=(-max_len=16384) ;;
    esac ;;
frontend)
    swiftc -sanitize=fuzzer -parse-as-library -O -g -module-name FuzzFrontend Sources/GraphIR/*.swift Sources/Frontend/*.swift \
        Tools/fuzz/Harness.swift Tools/fuzz/Mutator.swift -o "$BIN"
    cp Models/*.graph "$OUT/corpus-$TARGET/"
    EXTRA=(-dict=Tools/fuzz/graph.dict -max_len=16384)
    export FERGC_FUZZ_MODELS=Models ;;
plan)
    c_objects
    "${SWIFTC[@]}" -module-name Runtime "${C_FLAGS[@]}" Sources/Runtime/*.swift Tools/fuzz/targets/PlanHarness.swift \
        "$CK"/*/*.o "${C_LIBS[@]}" -o "$BIN"
    EXTRA=(-max_len=65536) ;;
npz)
    c_objects
    "${SWIFTC[@]}" -module-name Runtime "${C_FLAGS[@]}" Sources/Runtime/*.swift Sources/NumPyIO/*.swift \
        Tools/fuzz/targets/NPZHarness.swift "$CK"/*/*.o "${C_LIBS[@]}" -o "$BIN"
    EXTRA=(-max_len=65536) ;;
csv)
    c_objects
    swift_module Runtime Sources/Runtime/*.swift
    "${SWIFTC[@]}" -module-name FuzzCSV -I "$LIB" "${C_FLAGS[@]}" Sources/Training/FER2013.swift \
        Tools/fuzz/targets/CSVHarness.swift "$LIB"/Runtime.o "$CK"/*/*.o "${C_LIBS[@]}" -o "$BIN"
    EXTRA=(-max_len=16384) ;;
pgm|jpeg|png|cascade)
    c_objects CKernels
    c_objects CVision
    swift_module Runtime Sources/Runtime/*.swift
    swift_module Vision Sources/Vision/*.swift
    if [ "$TARGET" = cascade ]; then
        "${SWIFTC[@]}" -module-name FuzzCascade -I "$LIB" "${C_FLAGS[@]}" Tools/fuzz/targets/CascadeHarness.swift \
            "$LIB"/Runtime.o "$LIB"/Vision.o "$CK"/*/*.o "${C_LIBS[@]}" -o "$BIN"
        EXTRA=(-max_len=16384)
    else
        swift_module ImageIO Sources/ImageIO/*.swift
        FORMAT=$(echo "$TARGET" | tr a-z A-Z)
        "${SWIFTC[@]}" -module-name FuzzImage -D "FUZZ_$FORMAT" -I "$LIB" "${C_FLAGS[@]}" Tools/fuzz/targets/ImageHarness.swift \
            "$LIB"/Runtime.o "$LIB"/Vision.o "$LIB"/ImageIO.o "$CK"/*/*.o "${C_LIBS[@]}" -lpng16 -lturbojpeg -o "$BIN"
        EXTRA=(-max_len=16384)
    fi ;;
onnx)
    c_objects CKernels
    swift_module Runtime Sources/Runtime/*.swift
    swift_module GraphIR Sources/GraphIR/*.swift
    swift_module Interop Sources/Interop/*.swift
    "${SWIFTC[@]}" -module-name FuzzONNX -I "$LIB" "${C_FLAGS[@]}" Tools/fuzz/targets/ONNXHarness.swift \
        "$LIB"/Runtime.o "$LIB"/GraphIR.o "$LIB"/Interop.o "$CK"/*/*.o "${C_LIBS[@]}" -o "$BIN"
    EXTRA=(-max_len=16384) ;;
events)
    "${SWIFTC[@]}" -module-name FuzzEvents Sources/Training/Segments.swift Tools/fuzz/targets/EventsHarness.swift -o "$BIN"
    EXTRA=(-max_len=16384) ;;
*)
    echo "unknown fuzz target '$TARGET' (frontend plan npz csv pgm jpeg png cascade onnx events)" >&2; exit 2 ;;
esac
if [ -d "Tools/fuzz/corpus/$TARGET" ]; then cp Tools/fuzz/corpus/"$TARGET"/* "$OUT/corpus-$TARGET/"; fi
# The CPU time the run got (on a busy machine executions follow it, not the wall time).
TIMEFORMAT="fuzz: $TARGET took %R s wall, %U s user + %S s system CPU"
time SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$BIN" "$OUT/corpus-$TARGET" \
    -max_total_time="$DURATION" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} -timeout=10 -rss_limit_mb=2048 "${EXTRA[@]}" \
    -artifact_prefix="$OUT/artifacts-$TARGET/" -print_final_stats=1
