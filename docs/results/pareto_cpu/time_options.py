"""Issue 51, the time axis of the Pareto front: seconds per real case of each prediction option of a bundle, in its
default inference (``configs/inference.json`` through ``ConfigWorkflow``, start-up not counted: the workflow is
built, then ``run()`` over the cases is timed), in torch and in onnxruntime (``inference_onnx.json`` on the export
of the same option). Resumable: each finished option is a line of ``<out>/times.jsonl``; run it again to go on.

    python docs/results/pareto_cpu/time_options.py heart --cases 3 --out runs/pareto_time_heart
    python docs/results/pareto_cpu/time_options.py hippocampus --cases 20 --out runs/pareto_time_hippocampus
    python docs/results/pareto_cpu/time_options.py heart --cases 3 --match UNet --out runs/pareto_time_heart_unet

Options: for heart, the DynUNet pair (0.11.0's weights) and the UNet pair it replaced (0.9.0's, read from git), each
as a pair and one model, sliding-window overlap 0.25 and 0.5, windows per forward pass (``sw_batch_size``) 2 and 4; for
hippocampus, the shipped DynUNet, the UNet of 0.6.1 (from git) and a pair (the shipped weights twice). Dice is not
measured here (docs/results/pareto_cpu/front.py pairs these times with validation Dice).
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
DYNUNET_COMMIT = "6609d9e"  # heart 0.11.0: the DynUNet pair at 1000 steps (its models/ moved to models/accurate/)
HIPPOCAMPUS_UNET_COMMIT = "00b93ab"  # hippocampus 0.6.1: the UNet one model (val 84.89) before DynUNet
PAIR_OF_SHIPPED = "pair"  # the shipped model.pt as both members: the time of a pair does not depend on the values


def options(task: str) -> Dict[str, Dict[str, Any]]:
    """Option name -> bundle overrides (``weights``: a git commit whose models/ to use instead of the shipped)."""
    if task == "heart":
        unet = {"backbone": "UNet", "backbone_kwargs": {}, "weights": UNET_COMMIT}
        dynunet = {"backbone": "DynUNet", "backbone_kwargs": {}, "weights": DYNUNET_COMMIT}
        return {  # the cheap candidates first: the run is resumable, and each option costs minutes
            "DynUNet pair, overlap 0.25 (shipped)": {"ensemble": True, "sw_overlap": 0.25, **dynunet},
            "UNet one, overlap 0.25 (0.9.0)": {"ensemble": False, "sw_overlap": 0.25, **unet},
            "UNet pair, overlap 0.5 (0.9.0)": {"ensemble": True, "sw_overlap": 0.5, **unet},
            "DynUNet one, overlap 0.25": {"ensemble": False, "sw_overlap": 0.25, **dynunet},
            "DynUNet one, overlap 0.25, sw_batch_size 4": {"ensemble": False, "sw_overlap": 0.25, "sw_batch_size": 4,
                                                           **dynunet},
            "DynUNet pair, overlap 0.5": {"ensemble": True, "sw_overlap": 0.5, **dynunet},
            "UNet one, overlap 0.5 (0.9.0)": {"ensemble": False, "sw_overlap": 0.5, **unet},
            "UNet pair, overlap 0.25 (0.9.0)": {"ensemble": True, "sw_overlap": 0.25, **unet},
        }
    return {"DynUNet one (shipped)": {"ensemble": False},
            "UNet one (0.6.1)": {"ensemble": False, "backbone": "UNet", "backbone_kwargs": {},
                                 "weights": HIPPOCAMPUS_UNET_COMMIT},
            "DynUNet pair (the shipped weights twice)": {"ensemble": True, "weights": PAIR_OF_SHIPPED}}


def bundle_copy(name: str, weights: str | None, into: Path, keys: Dict[str, Any]) -> Path:
    """The bundle in ``into`` with ``keys`` written into its ``inference.json`` (so the ONNX export builds the same
    network), and the models of commit ``weights`` where given."""
    target = into / name
    shutil.copytree(ROOT / "bundles" / name, target, ignore=shutil.ignore_patterns("*.onnx", "previous"))
    config = target / "configs" / "inference.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **keys}, indent=1))
    if weights == PAIR_OF_SHIPPED:
        for member in ("fold0", "fold1"):
            (target / "models" / member).mkdir(exist_ok=True)
            shutil.copy(target / "models" / "model.pt", target / "models" / member / "model.pt")
    elif weights:
        shutil.rmtree(target / "models")
        for member in ("model.pt", "fold0/model.pt", "fold1/model.pt"):  # those the commit has
            shown = subprocess.run(["git", "show", f"{weights}:bundles/{name}/models/{member}"], cwd=ROOT,
                                   capture_output=True)
            if shown.returncode == 0:
                (target / "models" / member).parent.mkdir(parents=True, exist_ok=True)
                (target / "models" / member).write_bytes(shown.stdout)
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
    parser.add_argument("--match", default="", help="only the options whose name starts so, e.g. UNet")
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
        if option in done or not option.startswith(args.match):
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
