"""The table of docs/results.md, "Heart: DynUNet with deep supervision against the UNet": both early v2, the 4-fold
cross-validation at n = 4, seed 0, the largest component kept. Per-case Dice and HD95 on each fold's validation
cases (eval_s0, which choose) and test cases (test_s0, for the record), pooled and paired by case; the best
validation Dice per fold and the training time from each run's validation_metrics.csv.

The UNet side is member 0 of docs/results/heart_early_ensemble. Usage: python table.py <runs folder or this folder>.
"""

import sys
from pathlib import Path

from freq_transforms.metrics import bootstrap_ci, paired_difference_ci, read_metric_csv

HERE = Path(__file__).parent
UNET = HERE.parent / "heart_early_ensemble"


def scored_folds(root: Path) -> list:
    """The folds whose test cases are scored (all 4 once run.sh has finished)."""
    return [fold for fold in range(4) if (root / f"fold{fold}" / "test_s0" / "test_mean_dice_raw.csv").is_file()]


def per_case(root: Path, part: str, metric: str, folds: list) -> dict:
    values = {}
    for fold in folds:
        columns = read_metric_csv(root / f"fold{fold}" / f"{part}_s0" / f"test_{metric}_raw.csv")
        values.update(zip(columns["filename"], (float(v) for v in columns["mean"])))
    return values


def training_log(root: Path, fold: int) -> tuple:
    """(best validation Dice, seconds of training) from a run's validation_metrics.csv."""
    columns = read_metric_csv(log_path(root, fold))
    return max(columns["val_mean_dice"]), columns["seconds"][-1]


def log_path(root: Path, fold: int) -> Path:
    """The records keep validation_metrics.csv beside eval_s0; a run folder has it under eval/."""
    folder = root / f"fold{fold}"
    return next((p for p in (folder / "validation_metrics.csv", folder / "eval" / "validation_metrics.csv")
                 if p.is_file()), folder / "validation_metrics.csv")


def main(root: Path) -> None:
    folds = scored_folds(root)
    print("folds", folds)
    for part in ("eval", "test"):
        for metric, scale in (("mean_dice", 100), ("hd95", 1)):
            dyn, unet = per_case(root, part, metric, folds), per_case(UNET, part, metric, folds)
            cases = sorted(dyn)
            a, b = [dyn[c] for c in cases], [unet[c] for c in cases]
            print(f"{part} {metric} ({len(cases)} cases): UNet {bootstrap_ci(b).format(scale)}, DynUNet + deep "
                  f"supervision {bootstrap_ci(a).format(scale)}, DynUNet - UNet {paired_difference_ci(a, b).format(scale)}")
    for fold in folds:
        best, seconds = training_log(root, fold)
        print(f"fold {fold}: best validation Dice {100 * best:.2f}, training {seconds:.0f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
