#!/usr/bin/env bash
# issue 31: the hippocampus bundle's recipe with lr_schedule poly (bundle 0.8.0's default since this run), on the
# project's 2-core CPU (2 threads): 3574 s of training; then validation and test evaluation
set -euo pipefail
cd "$(dirname "$0")/../../.."   # the repository root, with the project installed
H=bundles/hippocampus_mri_fd_segmentation; D=../shared/data/Task04_Hippocampus; O=runs/hippo_poly_cpu
mkdir -p $O && cp -r $H/configs $O/
python -m monai.bundle run training --config_file $O/configs/train.json --bundle_root $O --dataset_dir $D \
    --num_workers 0 --lr_schedule poly
E="python -m monai.bundle run --config_file ['$O/configs/train.json','$O/configs/evaluate.json'] --bundle_root $O --dataset_dir $D --num_workers 0"
$E --output_dir $O/eval_val --validate#dataset#data "\$@split['val']"
$E --output_dir $O/eval_test
python -c "from freq_transforms.metrics import *; r=lambda p: read_metric_csv(p+'/test_mean_dice_raw.csv')['mean']; \
[print(s, paired_difference_ci(r(f'$O/eval_{s}'), r(f'docs/results/hippocampus_dynunet_ds/eval_{s}')).format(100)) for s in ('val', 'test')]"
python -m freq_transforms curve --csv docs/results/hippocampus_dynunet_ds/validation_metrics.csv,$O/eval/validation_metrics.csv \
    --labels "constant learning rate (bundle 0.8.0 before)","poly (shipped)" \
    --title "hippocampus: DynUNet + deep supervision, early v2 (2 CPU threads)" --out $H/docs/dice_vs_time.png
