import json
import sys

import pytest
from pathlib import Path

import cli_runner
from freq_transforms.lab.phantoms import write_phantom_dataset

ROOT = Path(__file__).resolve().parents[1]
SMALL_UNET = "'backbone_kwargs': {'channels': [8, 16, 32], 'strides': [2, 2], 'num_res_units': 1}"


def _sweep_cmd(bundle: str, data: Path, out: Path, *args: str, overrides: str) -> list:
    return [sys.executable, "-m", "freq_transforms", "sweep", "--bundle", str(ROOT / "bundles" / bundle),
            "--dataset_dir", str(data), "--out", str(out), *args, "--epochs", "1", "--overrides",
            "{'val_interval': 1, 'spatial_size': [32, 32, 24], 'num_workers': 0, " + overrides + SMALL_UNET + "}"]


def test_sweep_runs_grid_records_failure_resumes_and_summarizes(tmp_path):
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=8, seed=4, progress=False)
    out = tmp_path / "sweep"
    cmd = _sweep_cmd("hippocampus_mri_fd_segmentation", data, out, "--n_train", "2,3,99", "--fusion", "none,late",
                     "--seeds", "0", "--arch", "v2", overrides="'split_ratio': [6, 1, 1], ")
    first = cli_runner.run(cmd, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    failures = json.loads((out / "failures.json").read_text())
    assert set(failures) == {"n99_none_s0", "n99_late_s0"}
    assert "n_train=99 is larger than the train part (6 cases" in failures["n99_none_s0"]
    assert "2 of 6 runs failed" in first.stdout
    for name in ("n2_none_s0", "n2_late_s0", "n3_none_s0", "n3_late_s0"):
        assert (out / "runs" / name / "done.json").is_file()
    summary = (out / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if line.startswith("| hippocampus_mri_fd_segmentation | 2 ("))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:5] == ["2 (33.3%)", "none", "-", "1"]  # n as a share of the 6-case train part
    assert 0 <= float(cells[5]) <= 100  # best validation Dice, what settings are chosen by
    late = json.loads((out / "runs" / "n2_late_s0" / "done.json").read_text())
    assert late["arch"] == "v2" and late["fold"] is None
    rows = (out / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + 4
    assert (out / "dice_vs_ntrain.png").stat().st_size > 1000
    stamp = (out / "runs" / "n2_none_s0" / "done.json").stat().st_mtime_ns
    second = cli_runner.run(cmd, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0
    assert (out / "runs" / "n2_none_s0" / "done.json").stat().st_mtime_ns == stamp  # finished runs skipped

    shared = tmp_path / "shared"  # records without weights re-summarise to the same table
    exported = cli_runner.run([sys.executable, "-m", "freq_transforms", "export", "--out", str(out), "--dest", str(shared),
                               "--task", "hippocampus_mri_fd_segmentation"], capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert not list(shared.rglob("*.pt"))
    assert (shared / "summary.md").read_text() == summary

    empty = cli_runner.run([sys.executable, "-m", "freq_transforms", "export", "--out", str(tmp_path / "none"),
                            "--dest", str(tmp_path / "empty")], capture_output=True, text=True, timeout=300)
    assert empty.returncode == 2 and empty.stderr.startswith("error: no finished runs under")
    assert not (tmp_path / "empty").exists()

    from freq_transforms.lab.sweep import compare_runs  # an ablation sweep against the grid, paired over test cases
    same = compare_runs(out, shared, 2, "late", "late")
    assert "A - B 0.00 [0.00, 0.00]" in same
    assert "A - B" in compare_runs(out, out, 2, "late", "none")
    with pytest.raises(ValueError, match="no finished run with n_train=5"):
        compare_runs(out, out, 5, "late", "none")


def test_cross_validation_tests_every_case_once_keeps_duplicates_together_and_pools(tmp_path):
    import shutil

    data = write_phantom_dataset("heart", tmp_path / "data", n=7, seed=2, progress=False)
    shutil.copy(data / "imagesTr" / "heart_003.nii.gz", data / "imagesTr" / "heart_copy.nii.gz")  # one image, two labels
    meta = json.loads((data / "dataset.json").read_text())
    meta["training"].append({"image": "./imagesTr/heart_copy.nii.gz", "label": "./labelsTr/heart_000.nii.gz"})
    (data / "dataset.json").write_text(json.dumps(meta))
    out = tmp_path / "cv"
    cmd = _sweep_cmd("heart_mri_fd_segmentation", data, out, "--n_train", "2", "--fusion", "none,early", "--seeds", "0",
                     "--folds", "3", overrides="'check_data': False, 'sampling': 'resize', ")  # folds, not the grid
    result = cli_runner.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "failures.json").read_text()) == {}
    folds = json.loads((out / "folds.json").read_text())
    assert folds["same_image_groups"] == [["heart_003.nii.gz", "heart_copy.nii.gz"]]
    tested = [name for cases in folds["test_cases"].values() for name in cases]
    assert sorted(tested) == sorted(p.name for p in (data / "imagesTr").iterdir())  # every case tested exactly once
    for fusion in ("none", "early"):
        scored = []
        for fold in range(3):
            run = out / "runs" / f"n2_{fusion}_s0_f{fold}"
            split = json.loads((run / "eval" / "split.json").read_text())
            parts = {part: {item["image"].rsplit("/", 1)[-1] for item in split[part]} for part in ("train", "val", "test")}
            copies = [part for part, names in parts.items() if {"heart_003.nii.gz", "heart_copy.nii.gz"} & names]
            assert len(copies) <= 1 and not (parts["train"] & parts["test"]) and not (parts["val"] & parts["test"])
            scored += json.loads((run / "done.json").read_text())["files"]
        assert len(scored) == 8 and len(set(scored)) == 8
    row = next(line for line in (out / "summary.md").read_text().splitlines() if "| early |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4] == "1 x 3 folds" and cells[-1].count("[") == 1  # paired FD - none CI over all 8 pooled cases
    rows = (out / "summary.csv").read_text().splitlines()
    assert all(",8," in r for r in rows[1:])  # cases column: 8 pooled cases per row
    shared = tmp_path / "shared"
    cli_runner.run([sys.executable, "-m", "freq_transforms", "export", "--out", str(out), "--dest", str(shared),
                    "--task", "heart_mri_fd_segmentation"], check=True, capture_output=True, timeout=300)
    assert json.loads((shared / "folds.json").read_text()) == folds  # the fold record travels with the runs
    assert (shared / "summary.md").read_text() == (out / "summary.md").read_text()


def test_sweep_with_a_wrong_dataset_stops_with_one_line_before_any_run(tmp_path):
    cmd = [sys.executable, "-m", "freq_transforms", "sweep", "--bundle", str(ROOT / "bundles" / "hippocampus_mri_fd_segmentation"),
           "--dataset_dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), "--n_train", "2", "--epochs", "1"]
    result = cli_runner.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: dataset_dir {tmp_path / 'nowhere'} does not exist or is not a folder"]
    assert not (tmp_path / "out").exists()


def test_plot_places_the_whole_train_part_at_its_size(tmp_path):
    import warnings

    from freq_transforms.lab.sweep import _plot, _plot_x

    def row(n, fusion):
        return {"n_train": n, "train_part": 132, "fusion": fusion, "dice": 0.8, "dice_low": 0.78, "dice_high": 0.82}

    assert _plot_x(row(None, "early")) == 132 and _plot_x(row(4, "early")) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "No artists with labels found to put in legend"
        _plot([row(None, "early")], tmp_path / "all_only.png")
        _plot([row(4, "none"), row(None, "none"), row(4, "early")], tmp_path / "mixed.png")
    assert (tmp_path / "all_only.png").stat().st_size > 1000


def test_fd_minus_none_pairs_only_the_seeds_both_sides_ran_and_worst_class_shows_a_lost_class():
    from freq_transforms.lab.sweep import _paired_with_none, _worst_class_dice

    def record(seed, dice, classes=None):
        return {"seed": seed, "files": ["a", "b", "c"], "dice": dice, "class_dice": classes or {}}

    none = [record(0, [0.5, 0.6, 0.7]), record(1, [0.5, 0.6, 0.7]), record(2, [0.0, 0.0, 0.0])]
    fd = [record(0, [0.6, 0.7, 0.8]), record(1, [0.6, 0.7, 0.8])]
    text = _paired_with_none(fd, none)
    assert text.startswith("10.00 [10.00, 10.00]") and text.endswith("(seeds 0 1)")  # seed 2 of none left out
    lost = [record(0, [0.4] * 3, {"class0": [0.8, 0.8, 0.8], "class1": [0.0, 0.0, 0.0]})]
    assert _worst_class_dice(lost) == 0.0 and _worst_class_dice(fd) is None


def test_compare_can_restrict_to_one_seed(tmp_path):
    import json as _json

    from freq_transforms.lab.sweep import compare_runs

    for name, seed, arch, dice in (("n4_early_s0", 0, "v2", [0.8, 0.6]), ("n4_early_s1", 1, "v2", [0.0, 0.0]),
                                   ("n4_early_paper_s0", 0, "paper", [0.7, 0.5])):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        (run / "done.json").write_text(_json.dumps({"n_train": 4, "fusion": "early", "arch": arch, "seed": seed,
                                                    "files": ["a", "b"], "dice": dice, "hd95": [1.0, 1.0],
                                                    "val_dice": 0.5, "train_part": 8}))
    same = compare_runs(tmp_path, tmp_path, 4, "early", "early", "v2", "paper", seed=0)
    assert "A - B 10.00 [10.00, 10.00]" in same  # seed 1 of v2 left out


def test_image_fingerprints_are_hashed_once_per_file_version(tmp_path, monkeypatch):
    """participant_groups runs at every train and evaluate start: each image is hashed once, again only when it
    changes."""
    import os
    from unittest import mock

    from freq_transforms import data
    from freq_transforms.data import fingerprints
    from freq_transforms.lab.phantoms import write_phantom_dataset

    monkeypatch.setenv("FREQ_TRANSFORMS_CACHE", str(tmp_path / "cache"))
    items = data.load_msd_datalist(write_phantom_dataset("hippocampus", tmp_path / "d", n=4, seed=0,
                                                         shape=[16, 16, 12], progress=False))
    with mock.patch.object(fingerprints, "image_fingerprint", wraps=fingerprints.image_fingerprint) as hashed:
        first = data.participant_groups(items)
        assert hashed.call_count == 4
        assert data.participant_groups(items) == first and hashed.call_count == 4  # all from the cache
        stat = os.stat(items[1]["image"])
        os.utime(items[1]["image"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert data.participant_groups(items) == first and hashed.call_count == 5  # the changed file only
    assert (tmp_path / "cache" / "fingerprints.json").is_file()


def test_demo_reports_an_empty_prediction_instead_of_crashing(tmp_path, monkeypatch):
    """An empty prediction has no HD95 (NaN, as MONAI returns): the demo reports through the sweep's summary,
    which leaves such cases out of HD95 and keeps them in Dice."""
    import math

    from freq_transforms.lab import demo

    def fake_run(bundle, run_dir, common, n, fusion, seed, epochs, test_dir, logging_file):
        hd95 = [2.0, float("nan"), 3.0] if fusion == "early" else [2.5, 2.0, 3.5]
        return {"n_train": n, "fusion": fusion, "arch": "v2", "seed": seed, "fold": None, "epochs": epochs,
                "val_dice": 0.8, "train_part": 12, "files": ["a.nii.gz", "b.nii.gz", "c.nii.gz"],
                "dice": [0.8, 0.0 if fusion == "early" else 0.7, 0.9], "hd95": hd95, "class_dice": {}}

    monkeypatch.setattr(demo, "train_and_evaluate", fake_run)
    monkeypatch.setattr(demo, "write_phantom_dataset", lambda *a, **k: None)
    monkeypatch.setattr(demo, "prediction_figure", lambda *a, **k: tmp_path / "demo.png")
    bundle = Path(__file__).resolve().parents[1] / "bundles" / "hippocampus_mri_fd_segmentation"
    report = demo.run_demo(tmp_path / "out", bundle, 20, 1, 1, ["none", "early"], 0).read_text()
    early = next(line for line in report.splitlines() if "| early |" in line)
    assert "56.67" in early and "nan" not in early.lower()  # Dice keeps the empty case (0), HD95 leaves it out
    assert not math.isnan(float(early.split("|")[8].split()[0]))


def test_demo_runs_in_patch_mode(tmp_path):
    """The main job with sampling patch: patches, sliding-window evaluation, the table and the figure."""
    from freq_transforms.lab import demo

    bundle = Path(__file__).resolve().parents[1] / "bundles" / "hippocampus_mri_fd_segmentation"
    report = demo.run_demo(tmp_path / "out", bundle, 8, 2, 1, ["none", "early"], 0, iterations_per_epoch=2,
                           sampling="patch").read_text()
    assert "sampling `patch`), 2 epochs of 2 steps" in report and "--sampling patch" in report
    assert (tmp_path / "out" / "demo.png").stat().st_size > 10_000
    for fusion in ("none", "early"):
        rows = (tmp_path / "out" / "runs" / f"fusion_{fusion}" / "eval" / "validation_metrics.csv").read_text()
        assert [int(r.split(",")[1]) for r in rows.splitlines()[1:]] == [2, 4]  # budget in iterations
