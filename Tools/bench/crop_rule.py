#!/usr/bin/env python3
"""How the crop rule of `fergc predict` was chosen: agreement on the FER scene.

    python3 Tools/bench/crop_rule.py FERGC PLAN [SHARED]      (SHARED default ../shared)

SHARED/photos/fer-training-scene.jpg holds 12 FER2013 Training faces (their index in the
split is in the .json) pasted upscaled on a background. For each crop rule (margin x resize
filter) this runs `FERGC predict PLAN scene.jpg --detector haar --crop-margin M
--crop-filter F`, matches each detected face to a pasted one (IoU >= 0.5), and compares its
top emotion with the emotion the plan gives the original 48x48 face (read from
SHARED/data/fer2013-trainval.csv.gz and classified with `--detector auto`, whole). Prints,
per rule, how many detected faces agree and the mean total-variation distance between the two
probability vectors. Python standard library only.
"""
import gzip, json, os, subprocess, sys, tempfile

fergc, plan = sys.argv[1], sys.argv[2]
shared = sys.argv[3] if len(sys.argv) > 3 else "../shared"
scene = json.load(open(f"{shared}/photos/fer-training-scene.json"))
wanted = {f["index_in_split"]: f for f in scene["faces"]}

# The original faces, as 48x48 PGMs.
faces, k = {}, 0
with gzip.open(f"{shared}/data/fer2013-trainval.csv.gz", "rt") as f:
    next(f)
    for line in f:
        label, pixels, usage = line.rstrip("\n").split(",")
        if usage != scene["split"]:
            continue
        if k in wanted:
            faces[k] = bytes(int(v) for v in pixels.split())
        k += 1
        if len(faces) == len(wanted):
            break
tmp = tempfile.mkdtemp()
paths = {}
for i, px in faces.items():
    paths[i] = os.path.join(tmp, f"face{i}.pgm")
    with open(paths[i], "wb") as f:
        f.write(b"P5\n48 48\n255\n" + px)

def predict(args):
    out = subprocess.run([fergc, "predict", plan, "--format", "jsonl"] + args, capture_output=True, text=True)
    return [json.loads(l) for l in out.stdout.splitlines() if l.strip()]

original = {}
for r in predict(list(paths.values())):
    i = int(os.path.basename(r["file"])[4:-4])
    original[i] = r

def iou(a, b):
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)

print(f"{'margin':>7} {'filter':>9} {'agree':>7} {'mean TV':>8}  faces (index: detected/original)")
for filt in ["area", "bilinear"]:
    for margin in [-0.1, -0.05, 0.0, 0.05, 0.1, 0.15, 0.2, 0.3]:
        recs = [r for r in predict([f"{shared}/photos/fer-training-scene.jpg", "--detector", "haar",
                                    "--crop-margin", str(margin), "--crop-filter", filt]) if r["status"] == "face"]
        agree, tv, detail = 0, 0.0, []
        for r in recs:
            best = max(scene["faces"], key=lambda f: iou(r["box"], f["box"]))
            if iou(r["box"], best["box"]) < 0.5:
                continue
            o = original[best["index_in_split"]]
            agree += r["emotion"] == o["emotion"]
            tv += 0.5 * sum(abs(r["probabilities"][c] - o["probabilities"][c]) for c in o["probabilities"])
            detail.append(f"{best['index_in_split']}:{r['emotion'][:3]}/{o['emotion'][:3]}")
        n = max(len(detail), 1)
        print(f"{margin:>7} {filt:>9} {agree:>3}/{len(detail):<3} {tv / n:8.3f}  {' '.join(detail)}")
