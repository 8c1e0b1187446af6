"""Issue 50's benchmark: one phantom trial of 4 runs, serial with one thread per run against ``--workers 2
--cpus_per_run 1`` (a local Ray), measured side by side in one script on the same plan and cases; prints the
wall-time ratio and checks that both wrote the same numbers.

    python docs/results/trial_workers/bench.py --epochs 20 --out runs/trial_workers   # about 4 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from freq_transforms.lab.phantoms import write_phantom_dataset
from freq_transforms.trial import run_trial
from freq_transforms.trial.execution import Execution

HIPPO = Path(__file__).resolve().parents[3] / "bundles" / "hippocampus_mri_fd_segmentation"
SMALL = {"num_workers": 0, "cache_rate": 0, "patch_size": [32, 32, 24], "iterations_per_epoch": 2,
         "samples_per_volume": 2, "target_spacing": "median", "backbone": "UNet",
         "backbone_kwargs": {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("runs/trial_workers"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    cases = write_phantom_dataset("hippocampus", args.out / "data", n=12, seed=3, progress=False)
    plan = dict(n_train=[2], seeds=[0, 1], fusions=["none", "early"], overrides={**SMALL, "epochs": args.epochs},
                estimate=False)
    seconds, runs = {}, {}
    for mode, execution in (("serial, 1 thread per run", Execution(cpus_per_run=1)),
                            ("--workers 2 --cpus_per_run 1", Execution(workers=2, cpus_per_run=1))):
        out = args.out / mode.split(",")[0].strip("-").split()[0]
        start = time.perf_counter()
        run_trial(HIPPO, cases, out, execution=execution, **plan)
        seconds[mode] = time.perf_counter() - start
        runs[mode] = {json.dumps([r["fold"], r["n"], r["seed"], r["fusion"]]): r
                      for r in json.loads((out / "trial.json").read_text())["runs"]}
    serial, workers = (runs[m] for m in seconds)
    worst = max(abs(a - b) for key in serial for part in ("val", "test") for case in serial[key][part]
                for metric in ("dice", "hd95")
                for a, b in zip(serial[key][part][case][metric], workers[key][part][case][metric]))
    ratio = seconds["--workers 2 --cpus_per_run 1"] / seconds["serial, 1 thread per run"]
    record = {"epochs": args.epochs, "runs": len(serial), "seconds": seconds, "ratio": ratio,
              "largest_difference": worst}
    (Path(__file__).parent / "bench.json").write_text(json.dumps(record, indent=1) + "\n")
    for mode, wall in seconds.items():
        print(f"{mode}: {wall:.1f} s")
    print(f"ratio {ratio:.3f}; largest Dice/HD95 difference between the two {worst:.2g}")


if __name__ == "__main__":
    main()
