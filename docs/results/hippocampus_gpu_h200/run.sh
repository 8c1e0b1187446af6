#!/usr/bin/env bash
# Issue 31 device check (H200): the CUDA tests, then the hippocampus shipped recipe (132 cases, 40 epochs,
# best of 20 validation checks) in paired variants, plus a 5-member ensemble of it, all on the GPU, all at once.
set -u
T0=$(date +%s); el() { echo $(( $(date +%s) - T0 )); }
[ "${PIP:-1}" = 0 ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
R=/tmp/res; mkdir -p $R
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__, torch.cuda.get_device_name())"; } > $R/machine.txt 2>&1
(timeout 300 python3 -m pytest -m cuda tests/test_cuda.py tests/test_fourier.py -q -p no:cacheprovider > $R/cuda_tests.log 2>&1
 echo "pytest exit $? at $(el) s" >> $R/cuda_tests.log) &
H=bundles/hippocampus_mri_fd_segmentation; D=${DATA:-$PWD/.gpu/data/Task04_Hippocampus}; W=/tmp/w
NODS="--backbone_kwargs {'deep_supervision':False}"
UNET="--backbone UNet --backbone_kwargs ${UNET_KW:-{'norm':'instance'}}"
train() {  # name, overrides...
  local name=$1; shift; local O=$W/$name; mkdir -p $O; cp -r $H/configs $O/
  local t=$(el); nice -n ${NICE:-0} timeout ${LIMIT:-400} python3 -m monai.bundle run training --config_file $O/configs/train.json \
      --bundle_root $O --dataset_dir $D ${EXTRA:-} "$@" > $O/train.log 2>&1; local rc=$?
  echo "$name train exit $rc from $t s to $(el) s" >> $R/progress.txt
}
evaluate() {  # root, part, overrides...
  local O=$1 part=$2; shift 2; local V=(); [ $part = val ] && V=(--validate#dataset#data "\$@split['val']")
  python3 -m monai.bundle run --config_file "['$O/configs/train.json','$O/configs/evaluate.json']" --bundle_root $O \
      --dataset_dir $D --num_workers 2 --output_dir $O/eval_$part "${V[@]}" ${EXTRA:-} "$@" > $O/eval_$part.log 2>&1
  local rc=$?; echo "${O##*/} eval $part exit $rc at $(el) s" >> $R/progress.txt
}
run() { local name=$1; shift; train $name "$@" && { evaluate $W/$name val "$@" & evaluate $W/$name test "$@"; wait; }; }
run dyn_ds_early & run dyn_ds_none --fusion none & run dyn_early $NODS & run dyn_ds_early_poly --lr_schedule poly &
run unet_early $UNET &
for k in 0 1 2 3 4; do NICE=10 train member$k --members 5 --member $k & done
wait
E=$W/ensemble; mkdir -p $E/models; cp -r $H/configs $E/
for k in 0 1 2 3 4; do cp -r $W/member$k/models/fold$k $E/models/; done
evaluate $E val --ensemble true & evaluate $E test --ensemble true & wait
echo "all done at $(el) s" >> $R/progress.txt
cp $R/machine.txt $R/cuda_tests.log $R/progress.txt $W/ 2>/dev/null
cd $W && find . \( -name "*.csv" -o -name "split.json" -o -name "*.log" -o -name "*.txt" \) | tar czf $OUT/records.tgz -T -
pack() { local out=$1; shift; local have=(); for p in "$@"; do [ -f "$p" ] && have+=("$p"); done
  [ ${#have[@]} -gt 0 ] && tar cf $OUT/$out "${have[@]}"; }
mkdir -p $R/m; for n in dyn_ds_early dyn_ds_none dyn_early dyn_ds_early_poly; do cp $n/models/model.pt $R/m/$n.pt 2>/dev/null; done
for k in 0 1 2 3 4; do cp member$k/models/fold$k/model.pt $R/m/member$k.pt 2>/dev/null; done
cd $R/m && pack w1.tar dyn_ds_early.pt dyn_ds_none.pt; pack w2.tar dyn_early.pt dyn_ds_early_poly.pt
pack w3.tar member0.pt member1.pt; pack w4.tar member2.pt member3.pt; pack w5.tar member4.pt
ls -la $OUT; cat $R/progress.txt; tail -n 5 $R/cuda_tests.log
