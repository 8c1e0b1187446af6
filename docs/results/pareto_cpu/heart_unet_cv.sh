#!/usr/bin/env bash
# Issue 51, the Dice axis of the heart front for the UNet: the 4-fold cross-validation at n = 4 that chose the heart
# recipe (docs/results/heart_early_ensemble/run.sh: early v2, patch, augmentation, 200 steps, both members differing
# only in their seed), re-run with today's package, then every fold's validation cases scored by the pair and by
# member 0 alone at sliding-window overlap 0.25 and 0.5 (the largest component kept, the bundle's inference); then
# the same on every fold's test cases (test_*).
# One thread per job, the two members side by side (about 60 min of training on the 2-core CPU, then 32 scorings).
# Resumable: started again, it skips the trainings and scorings that are done. Table: python front.py heart
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
H=bundles/heart_mri_fd_segmentation; T=${TASK02:-../shared/data/Task02_Heart}
R=${RUNS:-runs/pareto_heart_unet}; S0=$R/s0; S1=$R/s1; O=$R/eval
UNET="'backbone': 'UNet', 'backbone_kwargs': {}, 'ensemble': False, 'sw_overlap': 0.5"  # bundle 0.9's network; validation window
mkdir -p $R
member0() {
  OMP_NUM_THREADS=1 python -m freq_transforms sweep --bundle $H --dataset_dir $T --out $S0 --n_train 4 --folds 4 \
      --fusion early --arch v2 --seeds 0 --epochs 10 --overrides "{'val_interval': 2, 'num_workers': 0, \
      'sampling': 'patch', 'iterations_per_epoch': 20, 'largest_component': False, 'augment': True, $UNET}"
}
member1() {  # member 0's configs and cases with set_determinism(seed=1): only initialisation and augmentation differ
  for f in 0 1 2 3; do
    A=$S0/runs/fold${f}_n4_s0_early/bundle; B=$S1/fold$f/bundle
    [ -f $B/models/model.pt ] && continue
    until [ -f $A/configs/trial.json ]; do sleep 20; done   # the sweep writes a fold's configs as it starts it
    [ -f $B/models/resume.pt ] || { rm -rf $B && mkdir -p $B && cp -r $A/configs $B/; }
    sed -i 's/set_determinism(seed=0)/set_determinism(seed=1)/' $B/configs/trial.json
    OMP_NUM_THREADS=1 python -m monai.bundle run --config_file "['$B/configs/train.json','$B/configs/trial.json']" \
        --bundle_root $B --meta_file $B/configs/metadata.json
  done
}
member0 >> $S0.log 2>&1 & P0=$!
member1 >> $S1.log 2>&1 & P1=$!
wait $P0 $P1
for f in 0 1 2 3; do   # per fold: both members in models/fold0, fold1 of one copy of member 0's configs
  A=$S0/runs/fold${f}_n4_s0_early/bundle; F=$O/fold$f
  mkdir -p $F/models/fold0 $F/models/fold1
  cp -r $A/configs $F/ && cp $A/models/model.pt $F/models/fold0/ && cp $S1/fold$f/bundle/models/model.pt $F/models/fold1/
  python -c "import json,sys; t=json.load(open(sys.argv[1])); t.pop('initialize'); t.pop('seed'); json.dump(t, open(sys.argv[2], 'w'))" \
      $F/configs/trial.json $F/configs/ens.json
  E="python -m monai.bundle run --config_file ['$F/configs/train.json','$F/configs/evaluate.json','$F/configs/ens.json'] --bundle_root $F --largest_component True --num_workers 0"
  for part in eval test; do   # the fold's validation cases (which chose), then its test cases
    T=(); [ $part = test ] && T=(--validate#dataset#data "\$@split['test']")
    for overlap in 0.25 0.5; do
      [ -f $F/${part}_pair_o$overlap/test_mean_dice_raw.csv ] || $E --ensemble True --sw_overlap $overlap --output_dir $F/${part}_pair_o$overlap "${T[@]}"
      [ -f $F/${part}_one_o$overlap/test_mean_dice_raw.csv ] || $E --ensemble False --ckpt_dir $F/models/fold0 --sw_overlap $overlap --output_dir $F/${part}_one_o$overlap "${T[@]}"
    done
  done
done >> $R.eval.log 2>&1
mkdir -p docs/results/pareto_cpu/heart_unet_cv   # the records: per-case validation Dice and HD95
for f in 0 1 2 3; do for d in $O/fold$f/eval_* $O/fold$f/test_*; do
  mkdir -p docs/results/pareto_cpu/heart_unet_cv/fold$f/$(basename $d) && cp $d/test_*_raw.csv docs/results/pareto_cpu/heart_unet_cv/fold$f/$(basename $d)/
done; done
