"""Issue 51, the time axis of the Pareto front: seconds per real case of each prediction option of a bundle, in its
default inference (``configs/inference.json`` through ``ConfigWorkflow``, start-up not counted: the workflow is
built, then ``run()`` over the cases is timed), in torch and in onnxruntime (``inference_onnx.json`` on the export
of the same option). Resumable: each finished option is a line of ``<out>/times.jsonl``; run it again to go on.

    python docs/results/pareto_cpu/time_options.py heart --cases 3 --out runs/pareto_time_heart
    python docs/results/pareto_cpu/time_options.py hippocampus --cases 20 --out runs/pareto_time_hippocampus

Options: the shipped weights alone and as the shipped pair (heart), sliding-window overlap 0.25 and 0.5, windows per
forward pass (``sw_batch_size``) 2 and 4; for heart also the UNet pair it replaced (bundle 0.9.0's weights, read
from git). Dice is not measured here: the shipped models trained on every heart case.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT.parent / "shared" / "data"
TASKS = {"heart": ("heart_mri_fd_segmentation", DATA / "Task02_Heart"),
         "hippocampus": ("hippocampus_mri_fd_segmentation", DATA / "Task04_Hippocampus")}
UNET_COMMIT = "97b71d9"  # heart 0.9.0: the UNet pair at 1000 steps


def options(task: str) -> Dict[str, Dict[str, Any]]:
    """Option name -> bundle overrides (``weights``: a git commit whose models/ to use instead of the shipped)."""
    if task == "heart":
        return {  # the cheap candidates first: the run is resumable, and each option costs minutes
            "DynUNet pair, overlap 0.25 (shipped)": {"ensemble": True, "sw_overlap": 0.25},
            "UNet one, overlap 0.25 (0.9.0)": {"ensemble": False, "sw_overlap": 0.25, "backbone": "UNet",
                                               "backbone_kwargs": {}, "weights": UNET_COMMIT},
            "UNet pair, overlap 0.5 (0.9.0)": {"ensemble": True, "sw_overlap": 0.5, "backbone": "UNet",
                                               "backbone_kwargs": {}, "weights": UNET_COMMIT},
            "DynUNet one, overlap 0.25": {"ensemble": False, "sw_overlap": 0.25},
            "DynUNet one, overlap 0.25, sw_batch_size 4": {"ensemble": False, "sw_overlap": 0.25, "sw_batch_size": 4},
            "DynUNet pair, overlap 0.5": {"ensemble": True, "sw_overlap": 0.5},
        }
    return {"DynUNet one (shipped)": {}, "DynUNet one, tta": {"tta": True}}


def bundle_copy(name: str, weights: str | None, into: Path, keys: Dict[str, Any]) -> Path:
    """The bundle in ``into`` with ``keys`` written into its ``inference.json`` (so the ONNX export builds the same
    network), and the models of commit ``weights`` where given."""
    target = into / name
    shutil.copytree(ROOT / "bundles" / name, target, ignore=shutil.ignore_patterns("*.onnx", "previous"))
    config = target / "configs" / "inference.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **keys}, indent=1))
    if weights:
        for member in ("model.pt", "fold0/model.pt", "fold1/model.pt"):
            blob = subprocess.run(["git", "show", f"{weights}:bundles/{name}/models/{member}"], cwd=ROOT,
                                  capture_output=True, check=True).stdout
            (target / "models" / member).write_bytes(blob)
    return target


def seconds_per_case(bundle: Path, files: List[str], inputs: Path, keys: Dict[str, Any], out: Path) -> float:
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(config_file=[str(bundle / "configs" / f) for f in files], workflow_type="inference",
                              bundle_root=str(bundle), input_dir=str(inputs), output_dir=str(out), num_workers=0,
                              **keys)
    workflow.initialize()
    start = time.perf_counter()
    workflow.run()
    seconds = time.perf_counter() - start
    workflow.finalize()
    return seconds / len(list(inputs.iterdir()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    name, data = TASKS[args.task]
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / "times.jsonl"
    done = {json.loads(line)["option"] for line in record.read_text().splitlines()} if record.is_file() else set()
    inputs = args.out / "inputs"
    if not inputs.is_dir():
        inputs.mkdir()
        for image in sorted((data / "imagesTr").glob("*.nii.gz"))[:args.cases]:
            (inputs / image.name).symlink_to(image)
    for option, keys in options(args.task).items():
        if option in done:
            continue
        keys = dict(keys)
        with tempfile.TemporaryDirectory() as tmp:
            weights = keys.pop("weights", None)
            bundle = bundle_copy(name, weights, Path(tmp), keys)
            row = {"option": option, "keys": keys, "cases": args.cases}
            row["torch"] = seconds_per_case(bundle, ["inference.json"], inputs, keys, Path(tmp) / "torch")
            averaging = [f"--{k}={keys.get(k, False)}" for k in ("tta", "ensemble")]
            subprocess.run([sys.executable, "-m", "freq_transforms", "onnx", str(bundle), *averaging], check=True,
                           capture_output=True)
            row["onnxruntime"] = seconds_per_case(bundle, ["inference.json", "inference_onnx.json"], inputs, keys,
                                                  Path(tmp) / "onnx")
        with record.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"{option}: torch {row['torch']:.1f} s, onnxruntime {row['onnxruntime']:.1f} s per case", flush=True)


if __name__ == "__main__":
    main()
