#!/usr/bin/env bash
# fergc against the peer frameworks on this machine, in interleaved rounds.
#
#   Tools/bench/compare.sh [--peers DIR] [--rounds N] [--no-pretrained] [MODEL]
#
#   MODEL          default Models/vgg_tuned.graph (the peers' script knows vgg_tuned and vgg_scratch)
#   --peers DIR    the peers' scripts (bench_peers.py, models.py); default ../shared/bench beside
#                  the project (or $PEERS_DIR)
#   --rounds N     rounds (default 3); every figure is the median over the rounds, and every
#                  ratio the median of the rounds' ratios
#   --no-pretrained  skip the pretrained VGG16 (Models/vgg16_pretrained_fast.graph) rounds
#
# First the machine: CPU model, the SIMD flags that decide the kernels (avx2, fma, avx512f,
# avx512_bf16, amx) and OpenBLAS's core, printed with the figures. Builds fergc in release
# (scratch .build-speed-rel; FERGC=path skips the build). Then N rounds, each: fergc training
# bs=128, inference bs=128, inference bs=1 (the mean of 200 runs, as the peers' script reports),
# then each peer framework in its own process (bench_peers.py with the python of $PEERS_VENV,
# default /tmp/peers, if it has torch; else the figures recorded in the peers' README, said so).
# Then the pretrained VGG16 (blocks 1-3 frozen, bs=128): fergc's step with the frozen prefix's
# output cached (as fergc train runs after the first epoch) and uncached, against Keras
# (Tools/bench/keras_pretrained.py, which runs blocks 1-3 forward every step), N rounds. Then
# batch 1 against ONNX Runtime, interleaved (Tools/bench/latency_pairs.py), on the machine as it
# is and with one busy loop running (the contention case). Then the peak resident memory of a
# training run at batch 128 against a PyTorch loop. Where the CPU has AMX, each round also times
# the training step and the inference with the convolutions in bf16 (`fergc bench --bf16`: what
# a train block's `compute = bf16` and a plan compiled with --compute bf16 run; the peers stay
# f32), the pretrained model's cached step too, and the batch-1 pairs run once more with it;
# the ratios say which figure they use.
# Run nothing else meanwhile: the machine has two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=3; PRETRAINED=1
PEERS_DIR=${PEERS_DIR:-../shared/bench}
MODEL=Models/vgg_tuned.graph
while [ $# -gt 0 ]; do
    case "$1" in
        --peers) PEERS_DIR=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --no-pretrained) PRETRAINED=0; shift ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) MODEL=$1; shift ;;
    esac
done
NAME=$(basename "$MODEL" .graph)
PEERS_VENV=${PEERS_VENV:-/tmp/peers}
PEERS_SCRIPT=$PEERS_DIR/bench_peers.py

# FERGC=path/to/fergc skips the build (use a release build).
if [ -z "${FERGC:-}" ]; then
    swift build -c release --scratch-path .build-speed-rel >/dev/null
    FERGC=.build-speed-rel/release/fergc
fi
HAVE_PEERS=0
if [ -x "$PEERS_VENV/bin/python" ] && "$PEERS_VENV/bin/python" -c "import torch" 2>/dev/null && [ -f "$PEERS_SCRIPT" ]; then
    HAVE_PEERS=1
fi

echo "== machine =="
grep -m1 "model name" /proc/cpuinfo | sed 's/^model name\s*: /cpu: /'
echo "cores: $(nproc); flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|fma|avx512f|avx512bw|avx512vl|avx512dq|avx512_bf16|avx512_fp16|amx_tile|amx_bf16' | tr '\n' ' ')"
$FERGC bench Models/tiny.graph --infer --batch 1 --runs 5 --warmup 0 --no-sgemm --json 2>/dev/null \
    | python3 -c "import json,sys; j=json.load(sys.stdin); print('OpenBLAS core:', j.get('openblas_core'), '| small sgemm level:', j.get('small_sgemm_level'))" \
    || echo "OpenBLAS core: unknown"
echo "fergc: $(git rev-parse --short HEAD 2>/dev/null || echo unknown); peers: $([ $HAVE_PEERS = 1 ] && echo "measured now ($PEERS_VENV, $PEERS_SCRIPT)" || echo "not installed here: recorded figures")"

field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
median() { python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(round(statistics.median(v), 3) if v else '')" "$@"; }

# Per-round figures: F_TRAIN, F_INFER, F_LAT (fergc); P_<fw>_<what> (peers), space-separated lists.
F_TRAIN=""; F_INFER=""; F_LAT=""; B_TRAIN=""; B_INFER=""; B_LAT=""
BF16=0
$FERGC bench Models/tiny.graph --infer --batch 1 --runs 5 --warmup 0 --no-sgemm --bf16 --json 2>/dev/null \
    | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin).get('compute','').startswith('bf16') else 1)" && BF16=1
echo "bf16 (AMX): $([ $BF16 = 1 ] && echo "yes, measured beside f32" || echo "not on this CPU")"
declare -A P
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r/$ROUNDS ($NAME) =="
    t=$($FERGC bench "$MODEL" --train --batch 128 --warmup 2 --runs 5 --no-sgemm --f32 --json | field img_per_s)
    i=$($FERGC bench "$MODEL" --infer --batch 128 --warmup 3 --runs 15 --no-sgemm --f32 --json | field img_per_s)
    l=$($FERGC bench "$MODEL" --infer --batch 1 --warmup 20 --runs 200 --no-sgemm --f32 --json \
        | python3 -c "import json,sys,statistics as s; print(round(s.mean(json.load(sys.stdin)['runs_ms']), 3))")
    F_TRAIN+="$t "; F_INFER+="$i "; F_LAT+="$l "
    printf "fergc    train bs=128 %8.1f img/s | infer bs=128 %8.1f img/s | infer bs=1 %6.3f ms (mean)\n" "$t" "$i" "$l"
    if [ $BF16 = 1 ]; then
        bt=$($FERGC bench "$MODEL" --train --batch 128 --warmup 2 --runs 5 --no-sgemm --bf16 --json | field img_per_s)
        bi=$($FERGC bench "$MODEL" --infer --batch 128 --warmup 3 --runs 15 --no-sgemm --bf16 --json | field img_per_s)
        bl=$($FERGC bench "$MODEL" --infer --batch 1 --warmup 20 --runs 200 --no-sgemm --bf16 --json \
            | python3 -c "import json,sys,statistics as s; print(round(s.mean(json.load(sys.stdin)['runs_ms']), 3))")
        B_TRAIN+="$bt "; B_INFER+="$bi "; B_LAT+="$bl "
        printf "fergc bf16 train bs=128 %8.1f img/s | infer bs=128 %8.1f img/s | infer bs=1 %6.3f ms (mean)\n" "$bt" "$bi" "$bl"
    fi
    if [ $HAVE_PEERS = 1 ]; then
        # One framework per process: one that is not installed (jax, say) must not stop the others.
        for fw in torch ort keras jax; do
            OUT=$(MODELS=$NAME "$PEERS_VENV/bin/python" "$PEERS_SCRIPT" $fw 2>/dev/null || true)
            [ -n "$OUT" ] && echo "$OUT"
            while read -r pfw model mode bs ips _ ms _; do
                [ "$model" = "$NAME" ] || continue
                [ "$pfw" = keras-tf ] && pfw=keras
                [ "$pfw" = jax-xla ] && pfw=jax
                case "$mode $bs" in
                    "train bs=128") P[${pfw}_train]+="$ips " ;;
                    "infer bs=128") P[${pfw}_infer]+="$ips " ;;
                    "infer bs=1") P[${pfw}_lat]+="$ms " ;;
                esac
            done <<< "$OUT"
        done
    fi
done
if [ $HAVE_PEERS = 0 ]; then
    echo "== peers: not installed here ($PEERS_VENV/bin/python with torch, or $PEERS_SCRIPT, not found); using the"
    echo "   figures recorded in $PEERS_DIR/README.md (2026-11-29, an AVX2 machine), not measured now =="
    if [ "$NAME" = vgg_scratch ]; then
        P=([keras_train]=294 [torch_train]=147 [jax_train]=113 [keras_infer]=963 [torch_infer]=480 [jax_infer]=428
           [onnxrt_infer]=948 [keras_lat]=3.13 [torch_lat]=3.61 [jax_lat]=3.59 [onnxrt_lat]=1.22)
    else
        P=([keras_train]=191 [torch_train]=114 [jax_train]=100 [keras_infer]=808 [torch_infer]=564 [jax_infer]=425
           [onnxrt_infer]=920 [keras_lat]=3.18 [torch_lat]=3.20 [jax_lat]=3.28 [onnxrt_lat]=1.27)
    fi
fi

echo "== medians over $ROUNDS rounds ($NAME) =="
printf "fergc    train bs=128 %8.1f img/s | infer bs=128 %8.1f img/s | infer bs=1 %6.3f ms\n" \
    "$(median $F_TRAIN)" "$(median $F_INFER)" "$(median $F_LAT)"
[ $BF16 = 1 ] && printf "fergc bf16 train bs=128 %8.1f img/s | infer bs=128 %8.1f img/s | infer bs=1 %6.3f ms\n" \
    "$(median $B_TRAIN)" "$(median $B_INFER)" "$(median $B_LAT)"
echo "== ratios (median of the rounds' ratios; fergc / peer, for latency peer / fergc: above 1 means fergc is faster) =="
ratios() {  # fergc list, peer list, invert
    python3 - "$1" "$2" "$3" <<'PY'
import statistics, sys
f = [float(x) for x in sys.argv[1].split()]; p = [float(x) for x in sys.argv[2].split()]
if len(p) == 1: p = p * len(f)   # recorded figures: one value
r = [(b / a if sys.argv[3] == "1" else a / b) for a, b in zip(f, p)]
print(f"{statistics.median(r):.2f}x" if r else "-")
PY
}
for fw in keras torch jax onnxrt; do
    line="$fw:"
    [ -n "${P[${fw}_train]:-}" ] && line+="  train $(ratios "$F_TRAIN" "${P[${fw}_train]}" 0) (peer median $(median ${P[${fw}_train]}) img/s)"
    [ -n "${P[${fw}_infer]:-}" ] && line+="  infer bs=128 $(ratios "$F_INFER" "${P[${fw}_infer]}" 0) (peer $(median ${P[${fw}_infer]}))"
    [ -n "${P[${fw}_lat]:-}" ] && line+="  bs=1 latency $(ratios "$F_LAT" "${P[${fw}_lat]}" 1) (peer $(median ${P[${fw}_lat]}) ms)"
    if [ $BF16 = 1 ]; then
        line+=" | fergc bf16:"
        [ -n "${P[${fw}_train]:-}" ] && line+=" train $(ratios "$B_TRAIN" "${P[${fw}_train]}" 0)"
        [ -n "${P[${fw}_infer]:-}" ] && line+=" infer bs=128 $(ratios "$B_INFER" "${P[${fw}_infer]}" 0)"
        [ -n "${P[${fw}_lat]:-}" ] && line+="  bs=1 latency $(ratios "$B_LAT" "${P[${fw}_lat]}" 1)"
    fi
    echo "$line"
done

# The pretrained VGG16, blocks 1-3 frozen, against Keras (which runs them forward every step).
if [ $PRETRAINED = 1 ]; then
    echo "== pretrained VGG16 (Models/vgg16_pretrained_fast.graph), training bs=128, $ROUNDS rounds =="
    C=""; U=""; K=""; BC=""
    for r in $(seq 1 "$ROUNDS"); do
        J=$($FERGC bench Models/vgg16_pretrained_fast.graph --train --batch 128 --warmup 1 --runs 5 --no-sgemm --f32 --json)
        c=$(echo "$J" | python3 -c "import json,sys; print(round(json.load(sys.stdin)['frozen_prefix']['img_per_s_cached'], 2))")
        u=$(echo "$J" | python3 -c "import json,sys; print(round(json.load(sys.stdin)['img_per_s'], 2))")
        C+="$c "; U+="$u "
        bc=""
        if [ $BF16 = 1 ]; then
            bc=$($FERGC bench Models/vgg16_pretrained_fast.graph --train --batch 128 --warmup 1 --runs 5 --no-sgemm --bf16 --json \
                | python3 -c "import json,sys; print(round(json.load(sys.stdin)['frozen_prefix']['img_per_s_cached'], 2))")
            BC+="$bc "
        fi
        k=""
        if [ -x "$PEERS_VENV/bin/python" ] && "$PEERS_VENV/bin/python" -c "import keras" 2>/dev/null; then
            k=$("$PEERS_VENV/bin/python" Tools/bench/keras_pretrained.py 8 2>/dev/null | awk '{print $5}' || true)
            [ -n "$k" ] && K+="$k "
        fi
        echo "round $r: fergc $c img/s (frozen prefix cached), $u img/s (uncached)${bc:+, bf16 $bc img/s cached} | keras ${k:-not measured} img/s"
    done
    echo "medians: fergc $(median $C) img/s cached, $(median $U) uncached | keras $([ -n "$K" ] && median $K || echo "not measured (no keras in $PEERS_VENV)")"
    if [ -n "$K" ]; then
        echo "fergc / keras (median of the rounds' ratios): cached $(ratios "$C" "$K" 0), uncached $(ratios "$U" "$K" 0)${BC:+, bf16 cached $(ratios "$BC" "$K" 0)}"
    fi
fi

# Batch 1 against ONNX Runtime, interleaved round by round (the machine's speed drifts within
# minutes), on the machine as it is, then with one busy loop holding a core (an embedded
# runtime shares the CPU with its host program).
if [ $HAVE_PEERS = 1 ] && "$PEERS_VENV/bin/python" -c "import onnxruntime" 2>/dev/null; then
    echo "== batch-1 latency, fergc and ONNX Runtime interleaved (Tools/bench/latency_pairs.py) =="
    PEERS_DIR=$PEERS_DIR "$PEERS_VENV/bin/python" Tools/bench/latency_pairs.py "$FERGC" "$MODEL" "$ROUNDS" 2>/dev/null \
        || echo "latency pairs: failed"
    if [ $BF16 = 1 ]; then
        echo "== the same, fergc in bf16 (ORT in f32) =="
        PEERS_DIR=$PEERS_DIR "$PEERS_VENV/bin/python" Tools/bench/latency_pairs.py "$FERGC" "$MODEL" "$ROUNDS" --bf16 2>/dev/null \
            || echo "latency pairs (bf16): failed"
    fi
    echo "== the same with one busy loop running (the contention case) =="
    sh -c 'while :; do :; done' &
    BUSY=$!
    trap 'kill $BUSY 2>/dev/null || true' EXIT
    PEERS_DIR=$PEERS_DIR "$PEERS_VENV/bin/python" Tools/bench/latency_pairs.py "$FERGC" "$MODEL" "$ROUNDS" 2>/dev/null \
        || echo "latency pairs under load: failed"
    if [ $BF16 = 1 ]; then
        echo "== the same under load, fergc in bf16 =="
        PEERS_DIR=$PEERS_DIR "$PEERS_VENV/bin/python" Tools/bench/latency_pairs.py "$FERGC" "$MODEL" "$ROUNDS" --bf16 2>/dev/null \
            || echo "latency pairs under load (bf16): failed"
    fi
    kill $BUSY 2>/dev/null || true
    trap - EXIT
fi

# Peak resident memory while training at batch 128 (KB from GNU time's %M).
echo "== peak resident memory, training bs=128 (whole process) =="
RSS_FERGC=$(/usr/bin/time -f "%M" "$FERGC" bench "$MODEL" --train --batch 128 --warmup 2 --runs 5 --no-sgemm --json 2>&1 >/dev/null | tail -1)
printf "fergc    %8.1f MB\n" "$(python3 -c "print($RSS_FERGC / 1024)")"
if [ $HAVE_PEERS = 1 ]; then
    TUNED=$([ "$NAME" = vgg_scratch ] && echo False || echo True)
    RSS_TORCH=$(/usr/bin/time -f "%M" "$PEERS_VENV/bin/python" -c "
import sys; sys.path.insert(0, '$PEERS_DIR')
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
