#!/usr/bin/env bash
# fergc against the peer frameworks on this machine, side by side.
#
#   Tools/bench/compare.sh [MODEL]        (default Models/vgg_tuned.graph)
#
# Builds fergc in release (scratch .build-speed-rel), runs `fergc bench` for training bs=128,
# inference bs=128 and inference bs=1 (the mean of 200 runs, as the peers' script reports;
# the median beside it), then ../shared/bench/bench_peers.py with the python
# of $PEERS_VENV (default /tmp/peers) if it has torch; otherwise it says so and compares
# against the figures recorded in ../shared/bench/README.md. Prints fergc / peer ratios.
# Then batch 1 once more, fergc and ONNX Runtime alternating in three rounds
# (Tools/bench/latency_pairs.py). Then the peak resident memory (/usr/bin/time's maximum
# RSS, whole process) of a training run at batch 128: `fergc bench --train` against a PyTorch loop over the same model (the
# peers' models.py), 2 warm-up and 5 timed steps each, synthetic FER-shaped batches.
# Run nothing else meanwhile: the machine has two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-Models/vgg_tuned.graph}
NAME=$(basename "$MODEL" .graph)
PEERS_VENV=${PEERS_VENV:-/tmp/peers}
PEERS_SCRIPT=${PEERS_SCRIPT:-../shared/bench/bench_peers.py}

# FERGC=path/to/fergc skips the build (use a release build).
if [ -z "${FERGC:-}" ]; then
    swift build -c release --scratch-path .build-speed-rel >/dev/null
    FERGC=.build-speed-rel/release/fergc
fi

field() { python3 -c "import json,sys; print(round(json.load(sys.stdin)['$1'], 3))"; }
echo "== fergc ($NAME) =="
TRAIN=$($FERGC bench "$MODEL" --train --batch 128 --warmup 2 --runs 5 --json | field img_per_s)
INFER=$($FERGC bench "$MODEL" --infer --batch 128 --warmup 3 --runs 15 --no-sgemm --json | field img_per_s)
# Batch 1: the mean of the timed runs, as bench_peers.py's timeit reports (the median too).
LATJSON=$($FERGC bench "$MODEL" --infer --batch 1 --warmup 20 --runs 200 --no-sgemm --json)
LAT=$(echo "$LATJSON" | python3 -c "import json,sys,statistics as s; print(round(s.mean(json.load(sys.stdin)['runs_ms']), 3))")
LATMED=$(echo "$LATJSON" | field ms_per_batch)
SGEMM=$($FERGC bench "$MODEL" --infer --batch 1 --warmup 0 --runs 5 --json | field sgemm_gflops)
printf "fergc    %-12s train bs=128 %8.1f img/s | infer bs=128 %8.1f img/s | infer bs=1 %6.2f ms (median %.2f) | sgemm %.0f GFLOP/s\n" \
    "$NAME" "$TRAIN" "$INFER" "$LAT" "$LATMED" "$SGEMM"

# Peers: measured now when the venv exists, else the README's figures (measured 2026-11-29).
declare -A PTRAIN PINFER PLAT
if [ -x "$PEERS_VENV/bin/python" ] && "$PEERS_VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "== peers (measured now: $PEERS_VENV) =="
    # One framework at a time: one that is not installed (jax, say) must not stop the others.
    OUT=""
    for fw in torch ort keras jax; do
        OUT+=$(MODELS=$NAME "$PEERS_VENV/bin/python" "$PEERS_SCRIPT" $fw 2>/dev/null || echo "$fw: not measured (not installed or failed)")$'\n'
    done
    echo "$OUT"
    while read -r fw model mode bs ips _ ms _; do
        [ "$model" = "$NAME" ] || continue
        [ "$fw" = keras-tf ] && fw=keras
        case "$mode $bs" in
            "train bs=128") PTRAIN[$fw]=$ips ;;
            "infer bs=128") PINFER[$fw]=$ips ;;
            "infer bs=1") PLAT[$fw]=$ms ;;
        esac
    done <<< "$OUT"
else
    echo "== peers: not installed here ($PEERS_VENV/bin/python with torch not found); using the figures of"
    echo "   ../shared/bench/README.md (measured on this kind of machine, 2026-11-29), not measured now =="
    if [ "$NAME" = vgg_scratch ]; then
        PTRAIN=([keras]=294 [torch]=147 [jax]=113); PINFER=([keras]=963 [torch]=480 [jax]=428 [onnxrt]=948)
        PLAT=([keras]=3.13 [torch]=3.61 [jax]=3.59 [onnxrt]=1.22)
    else
        PTRAIN=([keras]=191 [torch]=114 [jax]=100); PINFER=([keras]=808 [torch]=564 [jax]=425 [onnxrt]=920)
        PLAT=([keras]=3.18 [torch]=3.20 [jax]=3.28 [onnxrt]=1.27)
    fi
fi

echo "== ratios (fergc / peer; for latency peer / fergc: above 1 means fergc is faster) =="
for fw in keras torch jax onnxrt; do
    line="$fw:"
    [ -n "${PTRAIN[$fw]:-}" ] && line+=$(python3 -c "print(f'  train {$TRAIN/${PTRAIN[$fw]}:.2f}x')")
    [ -n "${PINFER[$fw]:-}" ] && line+=$(python3 -c "print(f'  infer bs=128 {$INFER/${PINFER[$fw]}:.2f}x')")
    [ -n "${PLAT[$fw]:-}" ] && line+=$(python3 -c "print(f'  bs=1 latency {${PLAT[$fw]}/$LAT:.2f}x')")
    echo "$line"
done

# Batch 1 again, interleaved with ONNX Runtime round by round (the machine's speed drifts
# within minutes, and the single figures above were taken minutes apart).
if [ -x "$PEERS_VENV/bin/python" ] && "$PEERS_VENV/bin/python" -c "import onnxruntime, torch" 2>/dev/null; then
    echo "== batch-1 latency, fergc and ONNX Runtime interleaved (Tools/bench/latency_pairs.py) =="
    PEERS_DIR=$(dirname "$PEERS_SCRIPT") "$PEERS_VENV/bin/python" Tools/bench/latency_pairs.py "$FERGC" "$MODEL" 3 2>/dev/null \
        || echo "latency pairs: failed"
fi

# Peak resident memory while training at batch 128 (KB from GNU time's %M).
echo "== peak resident memory, training bs=128 (whole process) =="
RSS_FERGC=$(/usr/bin/time -f "%M" "$FERGC" bench "$MODEL" --train --batch 128 --warmup 2 --runs 5 --no-sgemm --json 2>&1 >/dev/null | tail -1)
printf "fergc    %8.1f MB\n" "$(python3 -c "print($RSS_FERGC / 1024)")"
if [ -x "$PEERS_VENV/bin/python" ] && "$PEERS_VENV/bin/python" -c "import torch" 2>/dev/null; then
    TUNED=$([ "$NAME" = vgg_scratch ] && echo False || echo True)
    RSS_TORCH=$(/usr/bin/time -f "%M" "$PEERS_VENV/bin/python" -c "
import sys; sys.path.insert(0, '$(dirname "$PEERS_SCRIPT")')
import torch, torch.nn as nn
from models import torch_model
torch.set_num_threads(2); torch.manual_seed(0)
m = torch_model($TUNED); opt = torch.optim.Adam(m.parameters(), 1e-4); lf = nn.CrossEntropyLoss()
x = torch.randn(128, 1, 48, 48); y = torch.randint(0, 7, (128,))
for _ in range(7):
    opt.zero_grad(); lf(m(x), y).backward(); opt.step()
" 2>&1 >/dev/null | tail -1)
    printf "torch    %8.1f MB\n" "$(python3 -c "print($RSS_TORCH / 1024)")"
    python3 -c "print(f'ratio fergc / torch: {$RSS_FERGC / $RSS_TORCH:.2f}')"
else
    echo "torch: not installed here ($PEERS_VENV), not measured"
fi
