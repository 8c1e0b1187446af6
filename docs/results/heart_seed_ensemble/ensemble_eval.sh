#!/usr/bin/env bash
# $1: output folder; $2: member 1's bundle, %s for the fold; $3: member 0's bundle, %s for the fold (default
# runs/heart_none_aug's); further arguments go to every evaluation (e.g. --largest_component true). Per fold, both
# members' model.pt in models/fold0 and fold1 of one copy of member 0's configs, then the bundle's evaluate.json:
# the ensemble (--ensemble true) and each member alone, on the fold's validation cases (eval_*) and test cases (test_*)
set -euo pipefail
M0=${3:-runs/heart_none_aug/runs/fold%s_n4_s0_none/bundle}
for f in 0 1 2 3; do
  A=$(printf "$M0" $f); B=$(printf "$2" $f); O=$1/fold$f
  mkdir -p $O/models/fold0 $O/models/fold1
  cp -r $A/configs $O/ && cp $A/models/model.pt $O/models/fold0/ && cp $B/models/model.pt $O/models/fold1/
  # the trial's lists and keys, without its seed: the ensemble and each member are evaluated as they are
  python -c "import json,sys; t=json.load(open(sys.argv[1])); t.pop('initialize'); t.pop('seed'); json.dump(t, open(sys.argv[2], 'w'))" \
      $O/configs/trial.json $O/configs/ens.json
  E="python -m monai.bundle run --config_file ['$O/configs/train.json','$O/configs/evaluate.json','$O/configs/ens.json'] --bundle_root $O ${*:4}"
  for part in eval test; do
    T=(); [ $part = test ] && T=(--validate#dataset#data "\$@split['test']")
    $E --ensemble true --output_dir $O/${part}_ens "${T[@]}"
    $E --ensemble false --ckpt_dir $O/models/fold0 --output_dir $O/${part}_s0 "${T[@]}"
    $E --ensemble false --ckpt_dir $O/models/fold1 --output_dir $O/${part}_s1 "${T[@]}"
  done
done
