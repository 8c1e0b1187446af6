#!/usr/bin/env bash
# issue 31: the heart fusion choice with the current recipe (augmentation on): fusion none against heart_patch_aug
set -euo pipefail
cd "$(dirname "$0")/../../.."   # the repository root, with the project installed
H=bundles/heart_mri_fd_segmentation; T=../shared/data/Task02_Heart
python -m freq_transforms sweep --bundle $H --dataset_dir $T --out runs/heart_none_aug --n_train 4 --folds 4 \
    --fusion none --arch v2 --seeds 0 --epochs 10 --overrides "{'val_interval': 2, 'num_workers': 0, \
    'sampling': 'patch', 'iterations_per_epoch': 20, 'largest_component': False, 'augment': True, \
    'backbone': 'UNet', 'backbone_kwargs': {}, 'sw_overlap': 0.5}"   # bundle 0.9's network and window
