"""The table of docs/results.md, "Hippocampus: the shipped recipe trained twice": the shipped model (scored again
here; its first records are docs/results/hippocampus_poly_cpu), the same recipe with seed 1, and the two averaged,
paired by case on the 34 validation cases (which choose) and the 42 test cases (for the record). Usage: python table.py
"""

from pathlib import Path

from freq_transforms.metrics import bootstrap_ci, paired_difference_ci, read_metric_csv

HERE = Path(__file__).parent


def per_case(folder: Path, metric: str = "mean_dice") -> dict:
    columns = read_metric_csv(folder / f"test_{metric}_raw.csv")
    return dict(zip(columns["filename"], (float(v) for v in columns["mean"])))


def paired(a: dict, b: dict) -> str:
    if a.keys() != b.keys():
        raise ValueError("the two records score different cases")
    cases = sorted(a)
    return paired_difference_ci([a[c] for c in cases], [b[c] for c in cases]).format(100)


def main() -> None:
    print("| hippocampus, DynUNet + deep supervision, early v2, poly | validation Dice (%), 34 cases | test Dice (%), 42 cases |")
    print("|---|---|---|")
    rows = {"shipped model (seed 0)": "shipped", "seed 1": "seed1", "the pair averaged (`--ensemble true`)": "pair"}
    scores = {name: {part: per_case(HERE / f"eval_{part}_{run}") for part in ("val", "test")} for name, run in rows.items()}
    for name, parts in scores.items():
        print(f"| {name} | " + " | ".join(bootstrap_ci(list(parts[p].values())).format(100) for p in ("val", "test")) + " |")
    shipped, seed1, pair = scores.values()
    print("| pair minus shipped, paired | " + " | ".join(paired(pair[p], shipped[p]) for p in ("val", "test")) + " |")
    print("| pair minus seed 1, paired | " + " | ".join(paired(pair[p], seed1[p]) for p in ("val", "test")) + " |")
    print("| seed 1 minus shipped, paired | " + " | ".join(paired(seed1[p], shipped[p]) for p in ("val", "test")) + " |")
    hd = {name: per_case(HERE / f"eval_test_{run}", "hd95") for name, run in rows.items()}
    print("test HD95 (mm): " + ", ".join(f"{n} {bootstrap_ci(list(v.values())).format(1)}" for n, v in hd.items()))


if __name__ == "__main__":
    main()
