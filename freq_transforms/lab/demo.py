"""The main job on phantoms: train the hippocampus bundle with and without FD, evaluate, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

from tqdm import tqdm

from ..atomic import atomic_write_text
from .phantoms import write_phantom_dataset
from .plots import prediction_figure
from .runner import QUIET_LOGGING, bundle_default
from .records import summary_table, train_and_evaluate

__all__ = ["run_demo", "REAL_DATA_SUMMARY"]

# What the real-data grids in docs/results.md show, in one line; printed under the demo's phantom table.
REAL_DATA_SUMMARY = ("On real data (docs/results.md) FD v2 is mostly level with the plain UNet: early fusion "
                     "v2 hippocampus n = 4: +0.05 [-0.20, 0.31] Dice points, heart 4-fold CV n = 4: +0.17 [-0.47, 0.83], "
                     "n = 8: +2.43 [0.99, 4.25]; late fusion v2 trails it (hippocampus n = 4: -3.68 [-4.64, -2.75] "
                     "with its low band sampled where it is used).")


def run_demo(out: Path, bundle: Path, n_cases: int, epochs: int, val_interval: int,
             fusions: Optional[Sequence[str]], seed: int, iterations_per_epoch: int = 8,
             sampling: Optional[str] = None) -> Path:
    """Write ``out/results.md`` and ``out/demo.png`` and return the results path. Finished runs are reused.

    ``fusions`` default: ``none`` and the bundle's default FD mode (with the bundle's default ``arch``)."""
    fusions = list(fusions) if fusions else ["none", str(bundle_default(bundle, "fusion"))]
    sampling = sampling or str(bundle_default(bundle, "sampling"))
    out.mkdir(parents=True, exist_ok=True)
    logging_file = str(atomic_write_text(out / "quiet_logging.conf", QUIET_LOGGING))
    data_dir = out / "phantoms"
    steps = tqdm(total=1 + len(fusions), desc="demo", unit="step")
    if not (data_dir / "dataset.json").is_file():
        write_phantom_dataset("hippocampus", data_dir, n_cases, seed=0, overwrite=True, progress=False)
    steps.update()
    results: Dict[str, Dict] = {}
    for fusion in fusions:
        steps.set_postfix_str(f"train+evaluate fusion={fusion}")
        common = {"dataset_dir": str(data_dir), "val_interval": val_interval, "num_workers": 0,
                  "save_predictions": True, "sampling": sampling}
        if sampling == "patch":  # resize mode trains one pass over the training cases per epoch
            common["iterations_per_epoch"] = iterations_per_epoch
        results[fusion] = train_and_evaluate(bundle, out / "runs" / f"fusion_{fusion}", common, None, fusion, seed,
                                             epochs, None, logging_file)
        steps.update()
    steps.close()
    _, table = summary_table(list(results.values()), "hippocampus phantoms")
    first = Path(results[fusions[0]]["files"][0])
    label = data_dir / "labelsTr" / first.name
    predictions = {f: str(out / "runs" / f"fusion_{f}" / "eval" / "predictions" / first.name.replace(".nii.gz", "_seg.nii.gz"))
                   for f in fusions}
    png = prediction_figure(first, label, predictions, out / "demo.png",
                            class_names=bundle_default(bundle, "class_names"),
                            data_note="synthetic hippocampus phantom, test case")
    command = (f"python -m freq_transforms demo --out {out} --n_cases {n_cases} --epochs {epochs} "
               f"--val_interval {val_interval} --fusions {','.join(fusions)} --seed {seed} --sampling {sampling}"
               + (f" --iterations_per_epoch {iterations_per_epoch}" if sampling == "patch" else ""))
    report = (f"# FD demo on hippocampus phantoms\n\n`{command}`\n\n{n_cases} phantom cases, bundle "
              f"`{bundle.name}` with its defaults (backbone `{bundle_default(bundle, 'backbone')}`, fusion "
              f"`{bundle_default(bundle, 'fusion')}`, arch "
              f"`{bundle_default(bundle, 'arch')}`, sampling `{sampling}`), {epochs} epochs"
              f"{f' of {iterations_per_epoch} steps' if sampling == 'patch' else ''}. Metrics on the test split, "
              "original image grid."
              f"\n\n{table}\n\n{REAL_DATA_SUMMARY}\n\nFigure: {png.name}\n")
    path = atomic_write_text(out / "results.md", report)
    print(report)
    return path
