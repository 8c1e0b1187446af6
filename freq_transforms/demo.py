"""The main job on phantoms: train the hippocampus bundle with and without FD, evaluate, compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tqdm import tqdm

from .data import atomic_write_text
from .metrics import bootstrap_ci, paired_difference_ci
from .phantoms import write_phantom_dataset
from .plots import prediction_figure
from .runner import QUIET_LOGGING
from .sweep import train_and_evaluate

__all__ = ["run_demo", "bundle_default", "REAL_DATA_SUMMARY"]

# What the real-data grids in docs/results.md show, in one line; printed under the demo's phantom table.
REAL_DATA_SUMMARY = ("On real data (docs/results.md) FD v2 is mostly level with the plain UNet: early fusion "
                     "v2 hippocampus n = 4: +0.05 [-0.20, 0.31] Dice points, heart 4-fold CV n = 4: +0.17 [-0.47, 0.83], "
                     "n = 8: +2.43 [0.99, 4.25]; late fusion v2 keeps every class but trails it on hippocampus "
                     "(n = 4: -2.24 [-2.88, -1.57]).")


def bundle_default(bundle: Path, key: str) -> object:
    """A bundle's default for ``key`` (train.json), e.g. its FD mode."""
    return json.loads((bundle / "configs" / "train.json").read_text()).get(key)


def _table(results: Dict[str, Dict[str, List[float]]]) -> str:
    lines = ["| fusion | arch | test cases | mean Dice (%) [95% CI] | HD95 (mm) [95% CI] |", "|---|---|---|---|---|"]
    for fusion, values in results.items():
        arch = "-" if fusion == "none" else values.get("arch")
        lines.append(f"| {fusion} | {arch} | {len(values['dice'])} | {bootstrap_ci(values['dice']).format(100)} | "
                     f"{bootstrap_ci(values['hd95']).format()} |")
    if "none" in results:
        for fusion, values in results.items():
            if fusion != "none":
                diff = paired_difference_ci(values["dice"], results["none"]["dice"])
                lines.append(f"\nPaired difference {fusion} - none, mean Dice: {diff.format(100)} points")
    return "\n".join(lines)


def run_demo(out: Path, bundle: Path, n_cases: int, epochs: int, val_interval: int,
             fusions: Optional[Sequence[str]], seed: int) -> Path:
    """Write ``out/results.md`` and ``out/demo.png`` and return the results path. Finished runs are reused.

    ``fusions`` default: ``none`` and the bundle's default FD mode (with the bundle's default ``arch``)."""
    fusions = list(fusions) if fusions else ["none", str(bundle_default(bundle, "fusion"))]
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
        common = {"dataset_dir": str(data_dir), "val_interval": val_interval, "num_workers": 0,
                  "save_predictions": True}
        results[fusion] = train_and_evaluate(bundle, out / "runs" / f"fusion_{fusion}", common, None, fusion, seed,
                                             epochs, None, logging_file)
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
              f"`{bundle.name}` with its defaults (fusion `{bundle_default(bundle, 'fusion')}`, arch "
              f"`{bundle_default(bundle, 'arch')}`), {epochs} epochs. Metrics on the test split, original image grid."
              f"\n\n{table}\n\n{REAL_DATA_SUMMARY}\n\nFigure: {png.name}\n")
    path = atomic_write_text(out / "results.md", report)
    print(report)
    return path
