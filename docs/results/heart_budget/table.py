"""The budget table of docs/results.md, "Heart: the budget in steps at n = 12": per-case and pooled Dice and HD95 of
400 and 1000 steps on folds 0 and 1, the paired difference, and dice_vs_time.png beside this file (held-out Dice per
fold against training time). Usage: python table.py <runs folder or this folder>."""

import sys
from pathlib import Path

from freq_transforms.lab.plots import plt, save_figure
from freq_transforms.metrics import bootstrap_ci, paired_difference_ci, read_metric_csv

SECONDS = {"e20": (1200, 1231), "e50": (2551, 2501)}  # training wall time of folds 0 and 1 (run.sh's record)


def fold_scores(root: Path, run: str, metric: str, fold: int) -> list:
    csv = f"test_{metric}_raw.csv"
    folder = root / f"f{fold}_{run}"
    return list(read_metric_csv(next(p for p in (folder / "eval_test" / csv, folder / csv) if p.is_file()))["mean"])


def scores(root: Path, run: str, metric: str) -> list:
    return [v for fold in (0, 1) for v in fold_scores(root, run, metric, fold)]


def figure(root: Path, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for fold in (0, 1):
        minutes = [SECONDS[run][fold] / 60 for run in ("e20", "e50")]
        dice = [100 * sum(fold_scores(root, run, "mean_dice", fold)) / 4 for run in ("e20", "e50")]
        ax.plot(minutes, dice, "o-", label=f"fold {fold} (4 unseen cases)")
        for m, d, steps in zip(minutes, dice, (400, 1000)):
            ax.annotate(f"{steps} steps", (m, d), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.set(xlabel="training time, minutes (one thread of a 2-core CPU)", ylabel="mean Dice (%)",
           title="heart, n = 12, early v2: Dice against training time")
    ax.margins(x=0.1, y=0.15)
    ax.legend(fontsize=8, loc="upper left")
    return save_figure(fig, out)


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
    for metric, scale in (("mean_dice", 100), ("hd95", 1)):
        short, long = scores(root, "e20", metric), scores(root, "e50", metric)
        print(f"{metric}: 400 steps {bootstrap_ci(short).format(scale)}, "
              f"1000 steps {bootstrap_ci(long).format(scale)}, 1000 - 400 {paired_difference_ci(long, short).format(scale)}")
        print("  per case, 400 -> 1000:", ", ".join(f"{a * scale:.1f} -> {b * scale:.1f}" for a, b in zip(short, long)))
    if all((root / f"f{fold}_e50").is_dir() for fold in (2, 3)):  # the untouched test of the choice
        for metric, scale in (("mean_dice", 100), ("hd95", 1)):
            values = [v for fold in (2, 3) for v in fold_scores(root, "e50", metric, fold)]
            print(f"test, folds 2 and 3, 1000 steps, {metric}: {bootstrap_ci(values).format(scale)}")
    print(figure(root, Path(__file__).parent / "dice_vs_time.png"))
