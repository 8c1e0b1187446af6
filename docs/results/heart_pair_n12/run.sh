#!/usr/bin/env bash
# Issue 51, the heart default at the size it ships: the UNet pair at sliding-window overlap 0.25 (chosen on the n = 4
# cross-validation, docs/results/pareto_cpu/heart_unet_cv.sh) against one model at 0.5 and 0.25, trained on 12 cases
# (every case outside fold k, --train_on_val True) and scored on the 4 cases of fold k, for folds 2 and 3 (the
# 8 cases docs/results/heart_budget/run.sh kept for its test). The recipe is the shipped one (early v2, patch,
# augmentation, 1000 steps, poly, final weights, largest component kept); the members differ only in their seed.
# Per fold, two trainings side by side, one thread each (about 65 min on the 2-core CPU), then 3 scorings.
# Resumable: a finished training or scoring is skipped. Table: python docs/results/heart_pair_n12/table.py
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
H=bundles/heart_mri_fd_segmentation; T=${TASK02:-../shared/data/Task02_Heart}; R=${RUNS:-runs/heart_pair_n12}
U=(--backbone UNet --backbone_kwargs "{}")   # the default's network, whatever the bundle's defaults are
C=(--dataset_dir $T --num_workers 0 --folds 4 --train_on_val True)
train() {  # fold seed
  local B=$R/f$1_s$2
  [ -f $B/models/model.pt ] && return
  [ -f $B/models/resume.pt ] || { rm -rf $B && mkdir -p $B && cp -r $H/configs $B/; }
  OMP_NUM_THREADS=1 python -m monai.bundle run training --config_file $B/configs/train.json --bundle_root $B "${C[@]}" \
    --fold $1 --seed $2 --epochs 50 --val_interval 1000 "${U[@]}" > $B.log 2>&1   # no validation
}
score() {  # fold name ensemble overlap ckpt_dir
  local B=$R/f$1_s0 O=$R/f$1_eval/$2
  [ -f $O/test_mean_dice_raw.csv ] || python -m monai.bundle run --bundle_root $B "${C[@]}" --fold $1 "${U[@]}" \
    --config_file "['$B/configs/train.json','$B/configs/evaluate.json']" --largest_component True \
    --ensemble $3 --sw_overlap $4 --ckpt_dir $5 --output_dir $O >> $R.eval.log 2>&1
}
mkdir -p $R
for f in 2 3; do   # a fold's pair side by side, then its scorings
  train $f 0 & train $f 1 & wait
  for B in $R/f${f}_s0 $R/f${f}_s1; do [ -f $B/models/model.pt ] || { echo "$B did not train: $B.log"; exit 1; }; done
  P=$R/f${f}_pair/models; mkdir -p $P/fold0 $P/fold1
  cp $R/f${f}_s0/models/model.pt $P/fold0/ && cp $R/f${f}_s1/models/model.pt $P/fold1/
  score $f pair_o0.25 True 0.25 $P; score $f one_o0.5 False 0.5 $R/f${f}_s0/models; score $f one_o0.25 False 0.25 $R/f${f}_s0/models
done
for d in $R/f*_eval/*; do   # the records: per-case test Dice and HD95
  D=docs/results/heart_pair_n12/$(basename $(dirname $d))/$(basename $d); mkdir -p $D && cp $d/test_*_raw.csv $D/
done
