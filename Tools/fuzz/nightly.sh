#!/usr/bin/env bash
# Runs every fuzz target for a budget and reports executions and crashes (a nightly job).
#
#   Tools/fuzz/nightly.sh [SECONDS_PER_TARGET] [TARGET[:SECONDS]...]   # default 600 s, all targets
#
# TARGET:SECONDS gives one target its own budget (a slow target needs longer for 10^6
# executions: e.g. `Tools/fuzz/nightly.sh 600 csv frontend:1800`).
# Prints one line per target: executions, executions per second, corpus size, crashes (new
# files in .build-fuzz/artifacts-TARGET/), and exits 1 when any target crashed or did not run.
# Logs: .build-fuzz/nightly-TARGET.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUDGET="${1:-600}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(frontend plan npz csv pgm jpeg png cascade onnx events)
mkdir -p .build-fuzz
status=0
printf '%-9s %8s %12s %10s %8s %8s  %s\n' target seconds executions 'exec/s' corpus crashes log
for spec in "${TARGETS[@]}"; do
    t="${spec%%:*}"
    seconds="$BUDGET"
    [ "$spec" != "$t" ] && seconds="${spec#*:}"
    log=".build-fuzz/nightly-$t.log"
    mkdir -p ".build-fuzz/artifacts-$t"
    # Crashes, timeouts, out-of-memory and leaks; not slow-unit-* (kept, but a unit over 10 s
    # is a timeout and counted).
    before=$(ls ".build-fuzz/artifacts-$t" | grep -vc '^slow-unit-')
    nice Tools/fuzz/run.sh "$t" "$seconds" > "$log" 2>&1
    rc=$?
    after=$(ls ".build-fuzz/artifacts-$t" | grep -vc '^slow-unit-')
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | awk '{print $5}')
    [ -n "$took" ] && seconds="$took"
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | awk '{print $2}')
    corpus=$(ls ".build-fuzz/corpus-$t" 2>/dev/null | wc -l)
    crashes=$((after - before))
    printf '%-9s %8s %12s %10s %8s %8s  %s\n' "$t" "$seconds" "${execs:-?}" "${speed:-?}" "$corpus" "$crashes" "$log"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ] || [ -z "${execs:-}" ]; then status=1; fi
done
exit $status
