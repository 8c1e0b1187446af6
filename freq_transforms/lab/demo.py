"""The main job on phantoms: train the hippocampus bundle with and without FD, evaluate, compare."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

from ignite.engine import Engine, Events
from tqdm import tqdm

from ..atomic import atomic_write_text
from .phantoms import write_phantom_dataset
from .plots import prediction_figure
from .runner import QUIET_LOGGING, bundle_default
from .records import summary_table, train_and_evaluate

__all__ = ["run_demo", "EpochTicks", "REAL_DATA_SUMMARY"]

# What the real-data grids in docs/results.md show, in one line; printed under the demo's phantom table.
REAL_DATA_SUMMARY = ("On real data (docs/results.md) FD v2 is mostly level with the plain UNet: early fusion "
                     "v2 hippocampus n = 4: +0.05 [-0.20, 0.31] Dice points, heart 4-fold CV n = 4: +0.17 [-0.47, 0.83], "
                     "n = 8: +2.43 [0.99, 4.25]; late fusion v2 trails it (hippocampus n = 4: -3.68 [-4.64, -2.75] "
                     "with its low band sampled where it is used).")


class EpochTicks:
    """Trainer handler: one step of ``bar`` per finished epoch (the demo's bar counts every run's epochs)."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, lambda _: self.bar.update())


# console noise of the runs that is about nothing the user did: monai.bundle's warning about running a config (here
# this package's own bundle, for each run), and a deprecation MONAI's Hausdorff metric raises inside MONAI
QUIET_WARNINGS = ((UserWarning, "parsing config_file"), (FutureWarning, ".*always_return_as_numpy"))
# the runs' own progress bars (dataset caching, the case check of phantoms the demo has just written)
QUIET_RUNS = {"train#dataset#progress": False, "validate#dataset#progress": False, "check_data": False}


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        for category, message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def run_demo(out: Path, bundle: Path, n_cases: int, epochs: int, val_interval: int,
             fusions: Optional[Sequence[str]], seed: int, iterations_per_epoch: int = 8,
             sampling: Optional[str] = None, backbone: Optional[str] = None) -> Path:
    """Write ``out/results.md`` and ``out/demo.png`` and return the results path. Finished runs are reused.

    ``fusions`` default: ``none`` and the bundle's default FD mode (with the bundle's default ``arch``).
    ``backbone``: another backbone than the bundle's (with MONAI's default arguments), or ``None`` for its own."""
    fusions = list(fusions) if fusions else ["none", str(bundle_default(bundle, "fusion"))]
    sampling = sampling or str(bundle_default(bundle, "sampling"))
    out.mkdir(parents=True, exist_ok=True)
    logging_file = str(atomic_write_text(out / "quiet_logging.conf", QUIET_LOGGING))
    data_dir = out / "phantoms"
    if not (data_dir / "dataset.json").is_file():
        write_phantom_dataset("hippocampus", data_dir, n_cases, seed=0, overwrite=True, progress=False)
    common: Dict[str, Any] = {"dataset_dir": str(data_dir), "val_interval": val_interval, "num_workers": 0,
                              "save_predictions": True, "sampling": sampling, **QUIET_RUNS}
    if sampling == "patch":  # resize mode trains one pass over the training cases per epoch
        common["iterations_per_epoch"] = iterations_per_epoch
    if backbone:
        common.update({"backbone": backbone, "backbone_kwargs": {}})
    results: Dict[str, Dict] = {}
    with _quiet_warnings(), tqdm(total=len(fusions) * (epochs + 1), desc="demo", unit="epoch") as bar:
        for fusion in fusions:
            bar.set_postfix_str(f"fusion={fusion}")
            ticks = {"demo_progress": EpochTicks(bar),
                     "train#trainer#train_handlers": "$@train#handlers + [@demo_progress]"}
            before = bar.n
            results[fusion] = train_and_evaluate(bundle, out / "runs" / f"fusion_{fusion}", common, None, fusion,
                                                 seed, epochs, None, logging_file, train_overrides=ticks)
            bar.update(before + epochs + 1 - bar.n)  # the evaluation, and the epochs of a run done before
    return _report(out, bundle, results, fusions, data_dir,
                   f"python -m freq_transforms demo --out {out} --n_cases {n_cases} --epochs {epochs} "
                   f"--val_interval {val_interval} --fusions {','.join(fusions)} --seed {seed} --sampling {sampling}"
                   + (f" --iterations_per_epoch {iterations_per_epoch}" if sampling == "patch" else "")
                   + (f" --backbone {backbone}" if backbone else ""),
                   f"{epochs} epochs{f' of {iterations_per_epoch} steps' if sampling == 'patch' else ''}",
                   backbone or str(bundle_default(bundle, "backbone")), sampling)


def _report(out: Path, bundle: Path, results: Dict[str, Dict], fusions: List[str], data_dir: Path, command: str,
            budget: str, backbone: str, sampling: str) -> Path:
    _, table = summary_table(list(results.values()), "hippocampus phantoms")
    first = Path(results[fusions[0]]["files"][0])
    label = data_dir / "labelsTr" / first.name
    predictions = {f: str(out / "runs" / f"fusion_{f}" / "eval" / "predictions" / first.name.replace(".nii.gz", "_seg.nii.gz"))
                   for f in fusions}
    png = prediction_figure(first, label, predictions, out / "demo.png",
                            class_names=bundle_default(bundle, "class_names"),
                            data_note="synthetic hippocampus phantom, test case")
    report = (f"# FD demo on hippocampus phantoms\n\n`{command}`\n\n{len(results[fusions[0]]['files'])} test "
              f"cases of {len(list((data_dir / 'imagesTr').glob('*.nii.gz')))} phantoms, bundle `{bundle.name}` "
              f"(backbone `{backbone}`, fusion `{bundle_default(bundle, 'fusion')}`, arch "
              f"`{bundle_default(bundle, 'arch')}`, sampling `{sampling}`), {budget}. "
              "Metrics on the test split, original image grid."
              f"\n\n{table}\n\n{REAL_DATA_SUMMARY}\n\nFigure: {png.name}\n")
    path = atomic_write_text(out / "results.md", report)
    print(report)
    return path
