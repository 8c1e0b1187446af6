#!/usr/bin/env bash
# Ship the heart DynUNet pair once both members are done (README.md, "Shipping"): the weights into the bundle, the
# DynUNet folds' validation curves as the bundle's docs/dice_vs_time.png, the bundle rebuilt from its task file, then
# what the bundle's texts quote: the members' training time (times.py). Then the release record
# (bundles/model_info.json) and the bundle tests. Run it with nothing else on the CPU.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
H=bundles/heart_mri_fd_segmentation; R=runs/heart_dynunet_pair
for s in 0 1; do
  [ -f $R/s$s/done ] || { echo "member $s is not done: run bash docs/results/heart_dynunet_pair/run.sh first"; exit 1; }
done
cp $R/s0/models/model.pt $H/models/model.pt
cp $R/s0/models/model.pt $H/models/fold0/model.pt
cp $R/s1/models/model.pt $H/models/fold1/model.pt
cp docs/results/heart_dynunet_ds/dice_vs_time.png $H/docs/dice_vs_time.png
python -m freq_transforms bundles build
python docs/results/heart_dynunet_pair/times.py
# seconds per case: measured 2026-12-05 on this network with stand-in weights (the weights' values do not change
# the time), so not again here: python -m freq_transforms bench --repeats 1 --only prediction (about 25 minutes)
python -m freq_transforms release --out /tmp/heart_release
python -m pytest -q tests/test_bundles.py tests/test_release.py tests/test_onnx_inference.py
