#!/usr/bin/env python3
"""fergc's face detection beside OpenCV 4's detectMultiScale, in interleaved rounds.

    python detect_pairs.py FERGC IMAGE [--rounds R] [--runs N] [--threads T]

Needs a python with opencv-python-headless (cv2) 4.x. Each round times OpenCV (N runs after one
warm-up, cv2.setNumThreads(T), the median) and then `FERGC bench-detect IMAGE --threads T
--rounds N --json` (its median), so both see the same machine load. Prints each round's
milliseconds and ratio (fergc / OpenCV), the median ratio, and whether the boxes agree.
Detection parameters are the issue's: scale 1.1, 5 neighbours, 30x30 minimum, the
haarcascade_frontalface_default.xml of Debian's opencv-data, gray by cvtColor(BGR2GRAY).
"""
import argparse, json, statistics, subprocess, time

import cv2

p = argparse.ArgumentParser()
p.add_argument("fergc"); p.add_argument("image")
p.add_argument("--rounds", type=int, default=5); p.add_argument("--runs", type=int, default=10)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--cascade", default="/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml")
a = p.parse_args()

cv2.setNumThreads(a.threads)
cc = cv2.CascadeClassifier(a.cascade)
gray = cv2.cvtColor(cv2.imread(a.image, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)

def opencv():
    cc.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
    ts = []
    for _ in range(a.runs):
        t = time.perf_counter()
        boxes = cc.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts), sorted(map(tuple, map(list, boxes)))

def fergc():
    out = subprocess.run([a.fergc, "bench-detect", a.image, "--threads", str(a.threads), "--rounds", str(a.runs), "--json"],
                         check=True, capture_output=True, text=True).stdout
    img = json.loads(out)["images"][0]
    return img["detect_ms"], sorted(map(tuple, img["boxes"]))

print(f"OpenCV {cv2.__version__}, {a.threads} threads, {a.runs} runs per round (medians), {a.image}")
ratios = []
for r in range(a.rounds):
    o, ob = opencv()
    f, fb = fergc()
    ratios.append(f / o)
    print(f"round {r + 1}: OpenCV {o:7.1f} ms  fergc {f:7.1f} ms  ratio {f / o:.2f}  boxes {'equal' if ob == fb else 'DIFFER'} ({len(ob)} / {len(fb)})")
print(f"median ratio fergc / OpenCV: {statistics.median(ratios):.2f}")
