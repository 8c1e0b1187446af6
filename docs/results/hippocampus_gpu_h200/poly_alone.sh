#!/usr/bin/env bash
# the chosen recipe (hippocampus defaults + lr_schedule poly), alone, weights straight into $OUT
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
H=bundles/hippocampus_mri_fd_segmentation; O=/tmp/p; mkdir -p $O $OUT/models; cp -r $H/configs $O/
(while sleep 5; do cp $O/eval/validation_metrics.csv $OUT/ 2>/dev/null; done) &
python3 -m monai.bundle run training --config_file $O/configs/train.json --bundle_root $O --dataset_dir $PWD/.gpu/data/Task04_Hippocampus \
  --lr_schedule poly --ckpt_dir $OUT/models > $O/train.log 2>&1
echo "train exit $? in $(( $(date +%s) - T0 )) s"; cp $O/eval/validation_metrics.csv $O/eval/split.json $OUT/; tail -n 3 $O/train.log
