#!/usr/bin/env bash
# issue 31 (d) with full-budget members, hippocampus: the shipped recipe (bundle 0.8.1: DynUNet + deep supervision,
# early v2, poly, 132 cases, 40 epochs, best of 20 validation checks) trained once more with seed 1, then the pair
# (the shipped weights as member 0, seed 1 as member 1, probabilities averaged: --ensemble true) scored against the
# shipped model alone on the 34 validation cases (which choose) and the 42 test cases (for the record).
# The rule, set before the run: ship the pair (hippocampus ensemble default true) if the pair minus the shipped model
# on validation has a 95% CI whose lower end is above 0; otherwise one model stays, and seed 1 alone measures how far
# a re-training moves the score. About 60 min of training with 2 threads on the project's 2-core CPU; a stopped
# training resumes from its last epoch when run.sh is started again.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
H=bundles/hippocampus_mri_fd_segmentation; D=${TASK04:-../shared/data/Task04_Hippocampus}
S1=runs/hippo_seed1; P=runs/hippo_seed_pair; R=docs/results/hippocampus_seed_pair
export OMP_NUM_THREADS=${THREADS:-2}
if [ ! -f $S1/done ]; then
  [ -f $S1/models/resume.pt ] || { rm -rf $S1 && mkdir -p $S1 && cp -r $H/configs $S1/; }
  python -m monai.bundle run training --config_file $S1/configs/train.json --bundle_root $S1 --dataset_dir $D \
      --num_workers 0 --seed 1
  touch $S1/done
fi
mkdir -p $P/models/fold0 $P/models/fold1 && cp -r $H/configs $P/
cp $H/models/model.pt $P/models/model.pt; cp $H/models/model.pt $P/models/fold0/model.pt
cp $S1/models/model.pt $P/models/fold1/model.pt
E="python -m monai.bundle run --config_file ['$P/configs/train.json','$P/configs/evaluate.json'] --bundle_root $P --dataset_dir $D --num_workers 0"
for part in val test; do
  V=(); [ $part = val ] && V=(--validate#dataset#data "\$@split['val']")
  $E --ensemble true --output_dir $R/eval_${part}_pair "${V[@]}"
  $E --ensemble false --ckpt_dir $S1/models --output_dir $R/eval_${part}_seed1 "${V[@]}"
  $E --ensemble false --ckpt_dir $H/models --output_dir $R/eval_${part}_shipped "${V[@]}"   # = hippocampus_poly_cpu's
done
cp $S1/eval/validation_metrics.csv $R/validation_metrics_seed1.csv
python $R/table.py
