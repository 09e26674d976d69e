#!/bin/bash
set -e
cd "$(dirname "$0")/../../../.."   # the repository root
F=.build/release/fergc
D="--data ../shared/data/fer2013-trainval.csv.gz --split PublicTest"
O=runs/s58
date -u
# N1
$F ensemble Models/trained/best.plan $O/b44.plan --weights 2,1 -o $O/n1.plan
$F eval $O/n1.plan $D --predictions $O/n1.csv
$F eval Models/trained/best.plan $D --predictions $O/best.csv
$F eval $O/b44.plan $D --predictions $O/b44.csv
date -u
# N4
for k in 1 2 3 4 5 6 7 8; do $F ensemble --member $k Models/trained/best-ensemble.plan -o $O/m$k.plan; done
$F compile Models/vgg_k_narrow_gap_folded.graph --weights $O/m1.plan --input-side 44 --tta center_flip --weights-dtype f16 -o $O/m1_44.plan
$F compile Models/vgg_k_narrow_gap_folded.graph --weights $O/m3.plan --input-side 44 --tta center_flip --weights-dtype f16 -o $O/m3_44.plan
$F compile Models/vgg16_gap.graph --weights $O/m5.plan --input-side 44 --tta center_flip --weights-dtype f16 -o $O/m5_44.plan
$F compile Models/vgg16_gap.graph --weights $O/m7.plan --input-side 44 --tta center_flip --weights-dtype f16 -o $O/m7_44.plan
for k in 1 2 3 4 5 6 7 8; do $F eval $O/m$k.plan $D --predictions $O/m$k.csv; done
for k in 1 3 5 7; do $F eval $O/m${k}_44.plan $D --predictions $O/m${k}_44.csv; done
date -u
$F ensemble --predictions $O/m{1,2,3,4,5,6,7,8}.csv
$F ensemble --predictions $O/m{1,2,3,4,5,6,7,8}.csv $O/m{1,3,5,7}_44.csv
date -u
