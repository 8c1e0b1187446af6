"""The table of docs/results.md, "Heart: a sparser sliding window": the DynUNet fold models of folds 2 and 3
(docs/results/heart_dynunet_ds) scored with sliding-window overlap 0.25 against the recorded scores at 0.5, paired by
case, on validation (eval, which chooses) and test cases; and how far a repeat of the 0.5 scoring of fold 3's
validation cases lies from the record (0 if the scoring repeats).

Usage: python table.py <runs folder or this folder>.
"""

import sys
from pathlib import Path

from freq_transforms.metrics import bootstrap_ci, paired_difference_ci, read_metric_csv

HERE = Path(__file__).parent
RECORDED = HERE.parent / "heart_dynunet_ds"
FOLDS = (2, 3)


def per_case(csv: Path) -> dict:
    columns = read_metric_csv(csv)
    return dict(zip(columns["filename"], (float(v) for v in columns["mean"])))


def pooled(root: Path, folder: str, metric: str) -> dict:
    values = {}
    for fold in FOLDS:
        values.update(per_case(root / f"fold{fold}" / folder / f"test_{metric}_raw.csv"))
    return values


def main(root: Path) -> None:
    repeat = per_case(root / "fold3" / "eval_o0.5" / "test_mean_dice_raw.csv")
    record = per_case(RECORDED / "fold3" / "eval_s0" / "test_mean_dice_raw.csv")
    print(f"repeat of fold 3 validation at 0.5: largest |Dice - recorded| {max(abs(repeat[c] - record[c]) for c in record):.2e}")
    for part in ("eval", "test"):
        for metric, scale in (("mean_dice", 100), ("hd95", 1)):
            sparse, dense = pooled(root, f"{part}_o0.25", metric), pooled(RECORDED, f"{part}_s0", metric)
            cases = sorted(sparse)
            a, b = [sparse[c] for c in cases], [dense[c] for c in cases]
            print(f"{part} {metric} ({len(cases)} cases): overlap 0.5 {bootstrap_ci(b).format(scale)}, 0.25 "
                  f"{bootstrap_ci(a).format(scale)}, 0.25 - 0.5 {paired_difference_ci(a, b).format(scale)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
