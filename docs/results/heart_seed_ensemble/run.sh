#!/usr/bin/env bash
# issue 31 (d) on heart: 2-member ensembles against their members, 4-fold cross-validation at n = 4, fusion none,
# the heart recipe of docs/results/heart_none_aug (patch, augmentation, 200 steps, largest component off), one
# thread per job on the 2-core CPU. Member 0 is runs/heart_none_aug (bash docs/results/heart_none_aug/run.sh).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
D=docs/results/heart_seed_ensemble
# (1) seed 1 through the sweep: its own draw of 4 training cases from each fold's pool of 8 (7 distinct cases in
#     the two members together), so this ensemble also sees more cases
OMP_NUM_THREADS=1 python -m freq_transforms sweep --bundle bundles/heart_mri_fd_segmentation \
    --dataset_dir ../shared/data/Task02_Heart --out runs/heart_none_s1 --n_train 4 --folds 4 --fusion none --arch v2 \
    --seeds 1 --epochs 10 --overrides "{'val_interval': 2, 'num_workers': 0, 'sampling': 'patch', \
    'iterations_per_epoch': 20, 'largest_component': False, 'augment': True, \
    'backbone': 'UNet', 'backbone_kwargs': {}, 'sw_overlap': 0.5}"   # bundle 0.9's network and window
bash $D/ensemble_eval.sh runs/heart_ens runs/heart_none_s1/runs/fold%s_n4_s1_none/bundle
# (2) member 0's training cases and configs, set_determinism(seed=1): only initialisation and augmentation differ
for f in 0 1 2 3; do
  A=runs/heart_none_aug/runs/fold${f}_n4_s0_none/bundle; B=runs/heart_init1/fold$f/bundle
  [ -f $B/models/model.pt ] && continue
  rm -rf $B && mkdir -p $B && cp -r $A/configs $B/
  sed -i 's/set_determinism(seed=0)/set_determinism(seed=1)/' $B/configs/trial.json
  OMP_NUM_THREADS=1 python -m monai.bundle run --config_file "['$B/configs/train.json','$B/configs/trial.json']" \
      --bundle_root $B --meta_file $B/configs/metadata.json
done
bash $D/ensemble_eval.sh runs/heart_ens_init runs/heart_init1/fold%s/bundle
for R in runs/heart_ens runs/heart_ens_init; do   # records: docs/results/heart_seed_ensemble/own_cases, same_cases
  for part in eval test; do python $D/table.py $R $part ens s0 s1; done
done
