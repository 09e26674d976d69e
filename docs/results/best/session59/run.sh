#!/bin/bash
cd "$(dirname "$0")/../../../.."   # the repository root (run from runs/best59/ with "/../..")
exec runs/best59/fergc train Models/vgg16_b3_gap.graph --init ../shared/pretrained/vgg16_blocks1-4.npz --seed 24 --epochs 38 --set 'augment=augment(hflip=true, crop=40, pad=0, pad_mode=reflect, rotate=10, scale=0.2, erase=0.5)' --set 'finish=finish(epochs=2, lr=0.001, augment=augment(hflip=true, crop=40, pad=0, pad_mode=reflect))' --data ../shared/data/fer2013-trainval.csv.gz --out runs/best59/vgg16_b3_gap_fin_s24 --checkpoint-every 100 --stop-after 2h17m
