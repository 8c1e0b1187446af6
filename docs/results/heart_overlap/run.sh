#!/usr/bin/env bash
# issue 31, fast on a CPU: the heart DynUNet's sliding window with overlap 0.25 instead of 0.5 (about 2.5 times fewer
# windows). Scores the two DynUNet fold models still on this machine (folds 2 and 3 of docs/results/heart_dynunet_ds,
# runs/heart_dynunet_ds) exactly as that run.sh scored them (--ensemble false, the largest component kept), on each
# fold's validation cases (eval_o<overlap>, which choose) and test cases (test_o<overlap>, for the record); fold 3's
# validation cases again at 0.5 check that the scoring repeats the recorded numbers. Then table.py pairs them by case.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
R=${RUNS:-runs/heart_dynunet_ds}; export OMP_NUM_THREADS=${THREADS:-2}
score() {  # fold overlap part(eval|test)
  local B=$R/fold$1 O=$R/fold$1/$3_o$2 D=()
  [ -f $O/test_mean_dice_raw.csv ] && return
  [ $3 = test ] && D=(--validate#dataset#data "\$@split['test']")
  python -m monai.bundle run --config_file "['$B/configs/train.json','$B/configs/evaluate.json','$B/configs/score.json']" \
    --bundle_root $B --ensemble false --largest_component true --sw_overlap $2 --output_dir $O "${D[@]}"
}
score 3 0.5 eval
for f in 2 3; do for part in eval test; do score $f 0.25 $part; done; done
python docs/results/heart_overlap/table.py $R
