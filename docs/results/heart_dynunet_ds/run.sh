#!/usr/bin/env bash
# issue 31 (b) for heart: DynUNet with deep supervision against the UNet, early v2 for both, on the 4-fold
# cross-validation at n = 4 that chose the heart recipe (patch, augmentation, 200 steps, best validation epoch).
# The UNet side is member 0 of docs/results/heart_early_ensemble (runs/heart_early_aug, seed 0). This side takes its
# trial configs (the same cases, seed and keys) with the hippocampus bundle's backbone added:
#   backbone DynUNet, backbone_kwargs {'deep_supervision': True, 'deep_supr_num': 2}
# and the current bundle's train/evaluate configs (they differ from member 0's only in how validation calls its
# inferer). Two folds side by side, one thread each (about 55 min of training and 28 min of validation per fold,
# 2026-12-04), or FOLDS="3" THREADS=2 for one fold alone on both cores (fold 2: 76 min, 2026-12-05); a stopped run
# resumes from its last epoch when run.sh is started again; then each model is scored like member 0: --ensemble
# false, the largest component kept, on the fold's validation cases (eval_s0) and test cases (test_s0).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
H=bundles/heart_mri_fd_segmentation; UNET=runs/heart_early_aug/runs/fold%s_n4_s0_early/bundle; R=runs/heart_dynunet_ds
export OMP_NUM_THREADS=${THREADS:-1}; mkdir -p $R
one() {  # fold
  local f=$1 B=$R/fold$1 A
  A=$(printf "$UNET" $f)
  if [ ! -f $B/done ]; then   # resume.pt left by a stopped run: the bundle resumes it (resume true)
    [ -f $B/models/resume.pt ] || { rm -rf $B && mkdir -p $B && cp -r $H/configs $B/; }
    python - $A/configs/trial.json $B/configs/trial.json $f $H <<'PY'
import json, sys
from pathlib import Path
from freq_transforms.bundle.configs import bundle_parser
unet, out, fold, bundle = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
if unet.is_file():
    trial = json.loads(unet.read_text())
else:  # member 0's runs are gone (a fresh machine): fold 0's record with the lists the bundle draws for this fold
    trial = json.loads(Path("docs/results/heart_dynunet_ds/fold0/trial.json").read_text())
    keys = {k: trial[k] for k in ("n_train", "seed", "folds", "dataset_dir")}
    parser = bundle_parser(bundle, [bundle / "configs/train.json"], {**keys, "fold": fold, "bundle_root": "/tmp"})
    trial.update({"fold": fold, **{k: parser.get_parsed_content(k) for k in ("train#dataset#data",
                                                                              "validate#dataset#data")}})
trial.update(backbone="DynUNet", backbone_kwargs={"deep_supervision": True, "deep_supr_num": 2},
             sw_overlap=0.5)  # the window these runs validated and were scored with (bundle 0.10 defaults to 0.25)
json.dump(trial, open(out, "w"), indent=1)
PY
    python -m monai.bundle run --config_file "['$B/configs/train.json','$B/configs/trial.json']" --bundle_root $B \
        --meta_file $B/configs/metadata.json
    touch $B/done
  fi
  python -c "import json,sys; t=json.load(open(sys.argv[1])); t.pop('initialize'); t.pop('seed'); json.dump(t, open(sys.argv[2], 'w'))" \
      $B/configs/trial.json $B/configs/score.json
  E="python -m monai.bundle run --config_file ['$B/configs/train.json','$B/configs/evaluate.json','$B/configs/score.json'] --bundle_root $B --ensemble false --largest_component true"
  [ -f $B/eval_s0/test_mean_dice_raw.csv ] || $E --output_dir $B/eval_s0
  [ -f $B/test_s0/test_mean_dice_raw.csv ] || $E --output_dir $B/test_s0 --validate#dataset#data "\$@split['test']"
}
for pair in "0 1" "2 3"; do   # FOLDS="2" THREADS=2: one fold alone on both cores
  for f in $pair; do
    [[ " ${FOLDS:-0 1 2 3} " == *" $f "* ]] && { one $f >> $R.fold$f.log 2>&1 & }
  done
  wait
done
python docs/results/heart_dynunet_ds/table.py $R
