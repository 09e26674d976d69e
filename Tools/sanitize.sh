#!/usr/bin/env bash
# Runs the test suite (or a fast subset) under sanitizers, each in its own scratch build.
#
#   Tools/sanitize.sh asan [FILTER]    # AddressSanitizer (Swift and C) + UBSan (the C kernels)
#   Tools/sanitize.sh tsan [FILTER]    # ThreadSanitizer on the threaded tests
#   Tools/sanitize.sh all              # both, default filters
#
# Default filters:
#   asan: the whole suite ('.'; about half an hour on a busy 2-core machine); pass a filter for
#         a subset, e.g. 'NumPyIOTests|PlanFileTests|FrontendTests'.
#   tsan: the tests that run threads: Runtime (parallel kernels, SmallGemm from several
#         threads), PlanFile (sessions on many threads, the C API), ConvAlgorithm, Detection
#         (the window scan's threads).
# The C API tests compile the C examples with the toolchain's clang and the sanitizer's flags
# (FERGC_SANITIZER_CC, FERGC_SANITIZER_CFLAGS), so the sanitized library is linked into them.
# Builds (and the logs sanitize-build.log, sanitize-test.log) go to .build-asan / .build-tsan (a first build takes several minutes). Under TSan the
# C kernels are built without target_clones (their ifunc resolvers run before TSan's runtime;
# see Sources/CKernels/ckernels.c). FERGC_SANITIZER tells the tests which sanitizer runs (the
# C-example test then skips: a plain C program cannot link the sanitized library).
# Exit status: 0 when every selected test passed with no sanitizer report.
set -uo pipefail
cd "$(dirname "$0")/.."
PATH=/opt/swift/usr/bin:$PATH
MODE="${1:-all}"
status=0

CLANG="$(dirname "$(command -v swift)")/clang"
run() {  # name, sanitizer flags, scratch, filter, environment, C flags for the C examples
    local name="$1" flags="$2" scratch="$3" filter="$4" env="$5" cflags="$6"
    mkdir -p "$scratch"
    echo "== $name: swift build --build-tests $flags --scratch-path $scratch"
    local start=$SECONDS
    if ! nice swift build --build-tests $flags --scratch-path "$scratch" > "$scratch/sanitize-build.log" 2>&1; then
        echo "$name: build failed (see $scratch/sanitize-build.log)"; status=1; return
    fi
    echo "$name: built in $((SECONDS - start)) s; testing --filter '$filter'"
    start=$SECONDS
    env FERGC_SANITIZER="$name" FERGC_SANITIZER_CC="$CLANG" FERGC_SANITIZER_CFLAGS="$cflags" $env nice swift test --skip-build $flags --scratch-path "$scratch" \
        --disable-swift-testing --filter "$filter" > "$scratch/sanitize-test.log" 2>&1
    local rc=$?
    local executed reports
    executed=$(grep -E "^\s+Executed [0-9]+ tests" "$scratch/sanitize-test.log" | tail -1 | sed 's/^[[:space:]]*//')
    reports=$(grep -cE "ERROR: AddressSanitizer|runtime error:|WARNING: ThreadSanitizer" "$scratch/sanitize-test.log")
    echo "$name: ${executed:-no tests ran}; $reports sanitizer reports; $((SECONDS - start)) s (log: $scratch/sanitize-test.log)"
    if [ "$rc" -ne 0 ] || [ "$reports" -ne 0 ]; then status=1; fi
}

# swiftc has no -sanitize=undefined on Linux: Swift code traps on overflow and bounds by itself;
# UBSan instruments the C kernels (its handlers are part of the ASan runtime).
ASAN_FLAGS="--sanitize=address -Xcc -fsanitize=undefined"
ASAN_FILTER='.'
TSAN_FILTER='RuntimeTests|PlanFileTests|ConvAlgorithmTests|DetectionTests'
ASAN_C='-fsanitize=address,undefined'
# TSan's runtime intercepts libdispatch: a C program linking it needs the toolchain's
# libdispatch and BlocksRuntime.
SWIFT_LIBS="$(dirname "$(command -v swift)")/../lib/swift/linux"
TSAN_C="-fsanitize=thread -L$SWIFT_LIBS -ldispatch -lBlocksRuntime"

case "$MODE" in
asan) run "address+undefined" "$ASAN_FLAGS" .build-asan "${2:-$ASAN_FILTER}" "ASAN_OPTIONS=detect_leaks=0" "$ASAN_C" ;;
tsan) run "thread" "--sanitize=thread" .build-tsan "${2:-$TSAN_FILTER}" "TSAN_OPTIONS=halt_on_error=0" "$TSAN_C" ;;
all)
    run "address+undefined" "$ASAN_FLAGS" .build-asan "$ASAN_FILTER" "ASAN_OPTIONS=detect_leaks=0" "$ASAN_C"
    run "thread" "--sanitize=thread" .build-tsan "$TSAN_FILTER" "TSAN_OPTIONS=halt_on_error=0" "$TSAN_C" ;;
*) echo "usage: Tools/sanitize.sh asan|tsan|all [FILTER]" >&2; exit 2 ;;
esac
exit $status
