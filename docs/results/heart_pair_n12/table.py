"""The heart default at n = 12 (docs/results/heart_pair_n12/run.sh): per option, mean Dice and HD95 on the 8 cases of
folds 2 and 3 pooled (those scored so far), and the paired difference against the default (the pair at overlap 0.25).
Usage: python docs/results/heart_pair_n12/table.py [records folder, default this one]."""

import sys
from pathlib import Path
from typing import List

from freq_transforms.metrics import bootstrap_ci, paired_difference_ci, read_metric_csv

OPTIONS = {"pair_o0.25": "the UNet pair, overlap 0.25 (default)", "one_o0.25": "member 0 alone, overlap 0.25 (fast)",
           "one_o0.5": "member 0 alone, overlap 0.5 (0.12.0's default)"}
DEFAULT = "pair_o0.25"


def scored_folds(root: Path) -> List[int]:
    return [fold for fold in (2, 3) if all((root / f"f{fold}_eval" / o / "test_mean_dice_raw.csv").is_file()
                                           for o in OPTIONS)]


def pooled(root: Path, folds: List[int], option: str, metric: str) -> List[float]:
    return [float(v) for fold in folds
            for v in read_metric_csv(root / f"f{fold}_eval" / option / f"test_{metric}_raw.csv")["mean"]]


def main(root: Path) -> None:
    folds = scored_folds(root)
    print(f"folds scored: {folds}")
    print("| model, trained on 12 cases | mean Dice (%) [95% CI] | minus the default (paired) | HD95 (mm) [95% CI] |")
    print("|---|---|---|---|")
    default = pooled(root, folds, DEFAULT, "mean_dice")
    for option, name in OPTIONS.items():
        dice, hd95 = pooled(root, folds, option, "mean_dice"), pooled(root, folds, option, "hd95")
        vs = "-" if option == DEFAULT else paired_difference_ci(dice, default).format(100)
        print(f"| {name} | {bootstrap_ci(dice).format(100)} | {vs} | {bootstrap_ci(hd95).format(1)} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
