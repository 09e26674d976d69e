#!/usr/bin/env bash
# Runs every fuzz target for a budget and reports executions and crashes (a nightly job).
#
#   Tools/fuzz/nightly.sh [SECONDS_PER_TARGET] [TARGET[:SECONDS]...]   # default 600 s, all targets
#
# The targets: the libFuzzer ones of Tools/fuzz/run.sh, and commands-plan, commands-run and
# commands-predictions, Tools/fuzz/commands.py's mutation runs of whole fergc commands on a
# release build (built here if missing or older than a source), seeded with FUZZ_SEED (default:
# the time, printed in the log, so a night's mutants can be made again). For those, executions
# are mutants, corpus is '-', and crashes are failing inputs kept in .build-fuzz/commands-KIND-SEED/.
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
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(frontend plan npz csv pgm jpeg png cascade onnx events
                                      commands-plan commands-run commands-predictions)
SEED="${FUZZ_SEED:-$(date +%s)}"
mkdir -p .build-fuzz

# One line of the table: target seconds executions exec/s corpus crashes log.
row() { printf '%-20s %8s %12s %10s %8s %8s  %s\n' "$@"; }

# A release fergc for the commands-* targets, built once (only when one of them is asked for).
release_fergc() {
    local bin=.build/release/fergc
    if [ ! -x "$bin" ] || [ -n "$(find Sources Package.swift -newer "$bin" -print -quit)" ]; then
        PATH=/opt/swift/usr/bin:$PATH swift build -c release --product fergc || return 1
    fi
}

# One commands.py run: prints its line and returns non-zero on a failure or if it did not run.
commands_target() {  # target seconds log
    local kind="${1#commands-}" seconds="$2" log="$3" work=".build-fuzz/$1-$SEED" rc
    if ! release_fergc > "$log" 2>&1; then
        row "$1" "$seconds" '?' '?' - '?' "$log (build failed)"
        return 1
    fi
    echo "seed $SEED" >> "$log"
    nice python3 Tools/fuzz/commands.py "$kind" --seconds "$seconds" --seed "$SEED" --work "$work" >> "$log" 2>&1
    rc=$?
    local line execs took failures
    line=$(grep "^commands.py: $kind: [0-9]* mutants" "$log" | tail -1)
    execs=$(echo "$line" | awk '{print $3}')
    took=$(echo "$line" | grep -o 'in [0-9]* s$' | awk '{print $2}')
    failures=$(ls "$work" 2>/dev/null | grep -c '^fail-[0-9]*\.txt$')
    local speed='?'
    [ -n "$execs" ] && [ -n "$took" ] && [ "$took" -gt 0 ] && speed=$((execs / took))
    row "$1" "${took:-$seconds}" "${execs:-?}" "$speed" - "$failures" "$log"
    [ "$rc" -eq 0 ] && [ -n "$execs" ] && [ "$failures" -eq 0 ]
}
status=0
row target seconds executions 'exec/s' corpus crashes log
for spec in "${TARGETS[@]}"; do
    t="${spec%%:*}"
    seconds="$BUDGET"
    [ "$spec" != "$t" ] && seconds="${spec#*:}"
    log=".build-fuzz/nightly-$t.log"
    if [[ "$t" == commands-* ]]; then
        commands_target "$t" "$seconds" "$log" || status=1
        continue
    fi
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
    row "$t" "$seconds" "${execs:-?}" "${speed:-?}" "$corpus" "$crashes" "$log"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ] || [ -z "${execs:-}" ]; then status=1; fi
done
exit $status
