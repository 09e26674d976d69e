#!/usr/bin/env bash
# fergc's face detection beside OpenCV 4's detectMultiScale on this machine, side by side.
#
#   Tools/bench/detect_compare.sh [IMAGE...]   (default ../shared/photos/fer-training-scene.jpg)
#
# Builds fergc in release (FERGC=path skips the build), makes a venv with
# opencv-python-headless 4.x under .venv-bench (pip; skipped with a message if PyPI is not
# reachable), then for each image runs Tools/bench/detect_pairs.py: OpenCV and
# `fergc bench-detect` alternating in rounds, 2 threads each, and prints the ratio.
# Then the whole predict path (decode, detect, crop, classify with vgg_tuned) per image.
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGES=("$@")
[ ${#IMAGES[@]} -gt 0 ] || IMAGES=(../shared/photos/fer-training-scene.jpg)
THREADS=${THREADS:-2}
if [ -z "${FERGC:-}" ]; then
    swift build -c release --product fergc >/dev/null
    FERGC=.build/release/fergc
fi
VENV=${VENV:-.venv-bench}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import cv2" 2>/dev/null; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "opencv-python-headless<5" || {
        echo "detect_compare: cannot install opencv-python-headless (no PyPI?): fergc alone"
        for img in "${IMAGES[@]}"; do "$FERGC" bench-detect "$img" --threads "$THREADS"; done
        exit 0
    }
fi
for img in "${IMAGES[@]}"; do
    "$VENV/bin/python" Tools/bench/detect_pairs.py "$FERGC" "$img" --threads "$THREADS" --rounds "${ROUNDS:-5}" --runs "${RUNS:-10}"
done
"$FERGC" bench-detect "${IMAGES[@]}" --threads "$THREADS" --plan Models/trained/vgg_tuned.plan --rounds "${RUNS:-10}"
