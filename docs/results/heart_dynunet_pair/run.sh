#!/usr/bin/env bash
# issue 31 (b) for heart, shipping: the heart pair retrained with DynUNet and deep supervision, chosen on the 4-fold
# cross-validation at n = 4 (docs/results/heart_dynunet_ds). The shipped recipe otherwise unchanged: early v2, patch,
# augmentation, poly schedule over 1000 steps (50 epochs of 20), final weights, all 16 cases, no validation; member 0
# seed 0, member 1 seed 1. About 4 hours per member alone on both cores of the project's CPU (14.5 s per step), so the
# members train one after the other, and a stopped run (a session's end) resumes from its last epoch when run.sh is
# started again. THREADS=1 MEMBERS="0 1" PARALLEL=1 trains both side by side instead.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
H=bundles/heart_mri_fd_segmentation; T=${TASK02:-../shared/data/Task02_Heart}; R=runs/heart_dynunet_pair
export OMP_NUM_THREADS=${THREADS:-2}; mkdir -p $R
member() {  # seed
  local s=$1 B=$R/s$1
  [ -f $B/done ] && return
  [ -f $B/models/resume.pt ] || { rm -rf $B && mkdir -p $B && cp -r $H/configs $B/; }
  python -m monai.bundle run training --config_file $B/configs/train.json --bundle_root $B --dataset_dir $T \
    --split_ratio "[16, 0, 0]" --num_workers 0 --seed $s \
    --backbone DynUNet --backbone_kwargs "{'deep_supervision': True, 'deep_supr_num': 2}"
  touch $B/done
}
for s in ${MEMBERS:-0 1}; do
  if [ -n "${PARALLEL:-}" ]; then member $s >> $R.s$s.log 2>&1 & else member $s >> $R.s$s.log 2>&1; fi
done
wait
