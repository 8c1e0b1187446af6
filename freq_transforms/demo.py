"""The main job on phantoms: train the hippocampus bundle with and without FD, evaluate, compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence

from tqdm import tqdm

from .data import atomic_write_text
from .metrics import bootstrap_ci, paired_difference_ci, read_metric_csv
from .phantoms import write_phantom_dataset
from .plots import prediction_figure
from .runner import QUIET_LOGGING, run_bundle

__all__ = ["run_demo"]


def _train_and_evaluate(bundle: Path, run_dir: Path, data_dir: Path, fusion: str, epochs: int,
                        val_interval: int, seed: int, logging_file: str) -> None:
    common = {"dataset_dir": str(data_dir), "bundle_root": str(run_dir), "fusion": fusion, "seed": seed,
              "num_workers": 0}
    if not (run_dir / "models" / "model.pt").is_file() or not (run_dir / "trained.json").is_file():
        run_bundle(bundle, ["train"], logging_file=logging_file, epochs=epochs, val_interval=val_interval, **common)
        atomic_write_text(run_dir / "trained.json", json.dumps({"epochs": epochs, "fusion": fusion, "seed": seed}))
    run_bundle(bundle, ["train", "evaluate"], logging_file=logging_file, save_predictions=True, **common)


def _per_case(run_dir: Path) -> Dict[str, List[float]]:
    dice = read_metric_csv(run_dir / "eval" / "val_mean_dice_raw.csv")
    hd95 = read_metric_csv(run_dir / "eval" / "val_hd95_raw.csv")
    return {"files": dice["filename"], "dice": dice["mean"], "hd95": hd95["mean"]}


def _table(results: Dict[str, Dict[str, List[float]]]) -> str:
    lines = ["| fusion | test cases | mean Dice (%) [95% CI] | HD95 (mm) [95% CI] |", "|---|---|---|---|"]
    for fusion, values in results.items():
        lines.append(f"| {fusion} | {len(values['dice'])} | {bootstrap_ci(values['dice']).format(100)} | "
                     f"{bootstrap_ci(values['hd95']).format()} |")
    if "none" in results:
        for fusion, values in results.items():
            if fusion != "none":
                diff = paired_difference_ci(values["dice"], results["none"]["dice"])
                lines.append(f"\nPaired difference {fusion} - none, mean Dice: {diff.format(100)} points")
    return "\n".join(lines)


def run_demo(out: Path, bundle: Path, n_cases: int, epochs: int, val_interval: int, fusions: Sequence[str],
             seed: int) -> Path:
    """Write ``out/results.md`` and ``out/demo.png`` and return the results path. Finished runs are reused."""
    out.mkdir(parents=True, exist_ok=True)
    logging_file = str(atomic_write_text(out / "quiet_logging.conf", QUIET_LOGGING))
    data_dir = out / "phantoms"
    steps = tqdm(total=1 + len(fusions), desc="demo", unit="step")
    if not (data_dir / "dataset.json").is_file():
        write_phantom_dataset("hippocampus", data_dir, n_cases, seed=0, overwrite=True, progress=False)
    steps.update()
    results = {}
    for fusion in fusions:
        steps.set_postfix_str(f"train+evaluate fusion={fusion}")
        run_dir = out / "runs" / f"fusion_{fusion}"
        _train_and_evaluate(bundle, run_dir, data_dir, fusion, epochs, val_interval, seed, logging_file)
        results[fusion] = _per_case(run_dir)
        steps.update()
    steps.close()
    table = _table(results)
    first = Path(results[fusions[0]]["files"][0])
    label = data_dir / "labelsTr" / first.name
    predictions = {f: str(out / "runs" / f"fusion_{f}" / "eval" / "predictions" / first.name.replace(".nii.gz", "_seg.nii.gz"))
                   for f in fusions}
    png = prediction_figure(first, label, predictions, out / "demo.png")
    command = (f"python -m freq_transforms demo --out {out} --n_cases {n_cases} --epochs {epochs} "
               f"--val_interval {val_interval} --fusions {','.join(fusions)} --seed {seed}")
    report = (f"# FD demo on hippocampus phantoms\n\n`{command}`\n\n{n_cases} phantom cases, bundle "
              f"`{bundle.name}`, {epochs} epochs. Metrics on the test split, original image grid.\n\n{table}\n\n"
              f"Figure: {png.name}\n")
    path = atomic_write_text(out / "results.md", report)
    print(report)
    return path
