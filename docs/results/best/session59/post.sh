#!/bin/bash
# Rule O's plans and sets (docs/results/best/README.md, "Rule O"), after the run ends.
set -e
cd "$(dirname "$0")/../../../.."   # the repository root (run from runs/best59/ with "/../..")
F=runs/best59/fergc
D="--data ../shared/data/fer2013-trainval.csv.gz --split PublicTest"
O=runs/best59
R=$O/vgg16_b3_gap_fin_s24
date -u
$F report $R
for v in center_flip whole_flip center_flip+whole_flip; do
  n=${v/+/_}
  if [ $v = whole_flip ]; then t="--input-side 48 --tta flip"; else t="--tta $v"; fi
  $F compile Models/vgg16_b3_gap.graph --weights $R/checkpoint-last.npz $t --weights-dtype f16 -o $O/O-$n.plan
  mkdir -p $O/eval-O-$n
  $F eval $O/O-$n.plan $D --predictions $O/O-$n.csv --out $O/eval-O-$n 2>&1 | tee $O/eval-O-$n.txt
done
date -u
for k in 1 2 3 4 5 6 7 8; do $F ensemble --member $k Models/trained/best-ensemble.plan -o $O/m$k.plan; done
for k in 1 2 3 4 5 6 7 8; do $F eval $O/m$k.plan $D --predictions $O/m$k.csv > $O/m$k.txt; done
{
echo "the four as is:"; $F ensemble --predictions $O/m{1,2,3,4,5,6,7,8}.csv
echo "O in narrow seed 7's place:"; $F ensemble --predictions $O/O-center_flip.csv $O/O-whole_flip.csv $O/m{3,4,5,6,7,8}.csv
echo "O in narrow seed 8's place:"; $F ensemble --predictions $O/m{1,2}.csv $O/O-center_flip.csv $O/O-whole_flip.csv $O/m{5,6,7,8}.csv
echo "O in seed 15's fine-tune's place:"; $F ensemble --predictions $O/m{1,2,3,4}.csv $O/O-center_flip.csv $O/O-whole_flip.csv $O/m{7,8}.csv
echo "O in seed 16's place:"; $F ensemble --predictions $O/m{1,2,3,4,5,6}.csv $O/O-center_flip.csv $O/O-whole_flip.csv
echo "the five (reported only: at most four members):"; $F ensemble --predictions $O/m{1,2,3,4,5,6,7,8}.csv $O/O-center_flip.csv $O/O-whole_flip.csv
} 2>&1 | tee $O/o-in-the-four.txt
date -u
