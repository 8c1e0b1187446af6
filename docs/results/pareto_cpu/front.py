"""Issue 51: the Pareto front of a bundle, validation Dice against seconds per real case on the 2-core CPU.

Each candidate pairs per-case validation Dice (records in docs/results, paired by case against the reference, the
shipped default's own record) with the seconds per case that time_options.py measured in the bundle's default
inference, torch and onnxruntime (records times_*.jsonl here). Prints the Markdown table of docs/benchmarks.md and
draws front_<task>.png; then the same candidates on the test cases of the same splits, for the record (Dice and
HD95, paired against the default; the choice was made on validation).

    python docs/results/pareto_cpu/front.py heart
    python docs/results/pareto_cpu/front.py hippocampus
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

from freq_transforms.metrics import bootstrap_ci, paired_difference_ci, read_metric_csv

HERE = Path(__file__).parent
RESULTS = HERE.parent
CV = HERE / "heart_unet_cv"


def EARLY(part: str) -> List[Path]:  # noqa: N802 - the 2026-12-04 run of the same cross-validation, overlap 0.5
    return [RESULTS / "heart_early_ensemble" / f"fold{f}" / part for f in range(4)]


def _first_recorded(*choices: List[Path]) -> List[Path]:
    """The first list of record folders that holds records: heart_unet_cv.sh's run once it has finished, else the
    earlier run of the same cross-validation."""
    return next((c for c in choices if any((f / "test_mean_dice_raw.csv").is_file() for f in c)), [])
BUDGET = {"heart": 20.0, "hippocampus": 1.0}

# name -> (validation records, one folder per fold or one folder; time record file, its option name; role)
CANDIDATES = {
    "heart": {
        "UNet one, overlap 0.25": ([CV / f"fold{f}" / "eval_one_o0.25" for f in range(4)], "times_heart_unet.jsonl",
                                   "UNet one, overlap 0.25 (0.9.0)"),
        "UNet one, overlap 0.5": (_first_recorded([CV / f"fold{f}" / "eval_one_o0.5" for f in range(4)], EARLY("eval_s0")),
                                  "times_heart_unet.jsonl", "UNet one, overlap 0.5 (0.9.0)"),
        "UNet pair, overlap 0.25": ([CV / f"fold{f}" / "eval_pair_o0.25" for f in range(4)],
                                    "times_heart_unet.jsonl", "UNet pair, overlap 0.25 (0.9.0)"),
        "UNet pair, overlap 0.5": (_first_recorded([CV / f"fold{f}" / "eval_pair_o0.5" for f in range(4)], EARLY("eval_ens")),
                                   "times_heart_unet.jsonl", "UNet pair, overlap 0.5 (0.9.0)"),
        "DynUNet one, overlap 0.25": ([RESULTS / "heart_overlap" / f"fold{f}" / "eval_o0.25" for f in (2, 3)],
                                      "times_heart_dynunet.jsonl", "DynUNet one, overlap 0.25"),
        "DynUNet one, overlap 0.5": ([RESULTS / "heart_dynunet_ds" / f"fold{f}" / "eval_s0" for f in range(4)],
                                     None, None),
        "DynUNet pair, overlap 0.25": ([], "times_heart_dynunet.jsonl", "DynUNet pair, overlap 0.25 (shipped)"),
        "DynUNet pair, overlap 0.5": ([], "times_heart_dynunet.jsonl", "DynUNet pair, overlap 0.5"),
    },
    "hippocampus": {
        "UNet one (bundle 0.6.1)": ([RESULTS / "hippocampus_members" / "eval_val_shipped"],
                                    "times_hippocampus.jsonl", "UNet one (0.6.1)"),
        "DynUNet one": ([RESULTS / "hippocampus_poly_cpu" / "eval_val"], "times_hippocampus.jsonl",
                        "DynUNet one (shipped)"),
        "DynUNet pair (+ seed 1)": ([RESULTS / "hippocampus_seed_pair" / "eval_val_pair"], "times_hippocampus.jsonl",
                                    "DynUNet pair (the shipped weights twice)"),
    },
}
REFERENCE = {"heart": "UNet pair, overlap 0.25", "hippocampus": "DynUNet one"}


def per_case(folders: List[Path], metric: str = "mean_dice") -> Dict[str, float]:
    values: Dict[str, float] = {}
    for folder in folders:
        path = folder / f"test_{metric}_raw.csv"
        if path.is_file():
            columns = read_metric_csv(path)
            values.update(zip((Path(f).name for f in columns["filename"]), (float(v) for v in columns["mean"])))
    return values


def test_folders(folders: List[Path]) -> List[Path]:
    """The records of the same models on the test cases of the same split: each validation folder's name with its
    validation prefix for the test one (eval_val_x -> eval_test_x, eval_x -> test_x)."""
    def renamed(name: str) -> str:
        for validation, test in (("eval_val", "eval_test"), ("eval_", "test_")):
            if name.startswith(validation):
                return test + name[len(validation):]
        return name
    return [folder.with_name(renamed(folder.name)) for folder in folders]


def seconds(record: Optional[str], option: Optional[str]) -> Dict[str, float]:
    if record is None or not (HERE / record).is_file():
        return {}
    rows = [json.loads(line) for line in (HERE / record).read_text().splitlines()]
    return next(({k: r[k] for k in ("torch", "onnxruntime")} for r in rows if r["option"] == option), {})


def table(task: str) -> List[dict]:
    reference = per_case(CANDIDATES[task][REFERENCE[task]][0])
    rows = []
    for name, (folders, record, option) in CANDIDATES[task].items():
        dice = per_case(folders)
        row = {"name": name, "cases": len(dice), "time": seconds(record, option)}
        if dice:
            row["dice"] = bootstrap_ci(list(dice.values()))
            shared = sorted(set(dice) & set(reference))
            if name != REFERENCE[task] and shared:
                row["vs"] = paired_difference_ci([dice[c] for c in shared], [reference[c] for c in shared])
                row["vs_cases"] = len(shared)
        rows.append(row)
    return rows


def markdown(task: str, rows: List[dict]) -> str:
    lines = [f"| {task}: candidate | validation Dice (%) [95% CI] | cases | minus {REFERENCE[task]} (paired) | "
             "torch s / case | onnxruntime s / case | within the budget |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        dice = row["dice"].format(100) if "dice" in row else "not measured"
        vs = f"{row['vs'].format(100)} ({row['vs_cases']})" if "vs" in row else "-"
        torch_s, onnx_s = (f"{row['time'][k]:.1f}" if k in row["time"] else "-" for k in ("torch", "onnxruntime"))
        fits = ("yes" if row["time"]["torch"] <= BUDGET[task] else "no") if row["time"] else "no (about 100 s)"
        lines.append(f"| {row['name']} | {dice} | {row['cases']} | {vs} | {torch_s} | {onnx_s} | {fits} |")
    return "\n".join(lines)


def test_markdown(task: str) -> str:
    reference = per_case(test_folders(CANDIDATES[task][REFERENCE[task]][0]))
    lines = [f"| {task}: candidate, test cases | Dice (%) [95% CI] | cases | minus {REFERENCE[task]} (paired) | "
             "HD95 (mm) [95% CI] |", "|---|---|---|---|---|"]
    for name, (folders, _, _) in CANDIDATES[task].items():
        tests = test_folders(folders)
        dice, hd95 = per_case(tests), per_case(tests, "hd95")
        if not dice:
            continue
        shared = sorted(set(dice) & set(reference))
        vs = (f"{paired_difference_ci([dice[c] for c in shared], [reference[c] for c in shared]).format(100)} "
              f"({len(shared)})" if name != REFERENCE[task] and shared else "-")
        lines.append(f"| {name} | {bootstrap_ci(list(dice.values())).format(100)} | {len(dice)} | {vs} | "
                     f"{bootstrap_ci(list(hd95.values())).format(1) if hd95 else '-'} |")
    return "\n".join(lines)


def figure(task: str, rows: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for row in (r for r in rows if "dice" in r and r["time"]):
        for engine, marker in (("torch", "o"), ("onnxruntime", "s")):
            ax.plot(row["time"][engine], 100 * row["dice"].mean, marker, color="C0" if engine == "torch" else "C1",
                    label=engine)
        ax.annotate(row["name"], (row["time"]["torch"], 100 * row["dice"].mean), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    ax.axvline(BUDGET[task], color="grey", linestyle="--", label=f"budget {BUDGET[task]:g} s")
    ax.set_xscale("log")
    for axis_format in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis_format(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("seconds per real case, 2-core CPU (log)")
    ax.set_ylabel("validation Dice (%)")
    ax.set_title(f"{task}: Dice against time per case")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys(), fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(task: str) -> None:
    rows = table(task)
    print(markdown(task, rows))
    figure(task, rows, HERE / f"front_{task}.png")
    print()
    print(test_markdown(task))


if __name__ == "__main__":
    main(sys.argv[1])
