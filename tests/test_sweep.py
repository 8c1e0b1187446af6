"""``sweep`` is the trial on this project's bundles' own split (``trial --split bundle``); ``compare`` and
``export`` work on trial folders and on the sweep records kept in docs/results."""

import json
import sys
from pathlib import Path

import pytest

import cli_runner
from freq_transforms.lab.phantoms import write_phantom_dataset

ROOT = Path(__file__).resolve().parents[1]
SMALL_UNET = "'backbone': 'UNet', 'backbone_kwargs': {'channels': [8, 16, 32], 'strides': [2, 2], 'num_res_units': 1}"


def _sweep_cmd(bundle: str, data: Path, out: Path, *args: str, overrides: str) -> list:
    return [sys.executable, "-m", "freq_transforms", "sweep", "--bundle", str(ROOT / "bundles" / bundle),
            "--dataset_dir", str(data), "--out", str(out), *args, "--epochs", "1", "--overrides",
            "{'val_interval': 1, 'spatial_size': [32, 32, 24], 'num_workers': 0, " + overrides + SMALL_UNET + "}"]


def _images(items) -> list:
    return sorted(Path(str(item["image"])).name for item in items)


@pytest.mark.slow
def test_sweep_is_the_trial_on_the_bundles_own_split_resumes_exports_and_compares(tmp_path):
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=8, seed=4, progress=False)
    out = tmp_path / "sweep"
    cmd = _sweep_cmd("hippocampus_mri_fd_segmentation", data, out, "--n_train", "2,all", "--fusion", "none,late",
                     "--seeds", "1", "--arch", "v2", overrides="'split_ratio': [6, 1, 1], ")
    first = cli_runner.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["split"] == "bundle" and plan["parts"] == {"folds": 1, "pool": [6], "val": [1], "test": [1]}
    assert plan["layout"] == "v2" and plan["overrides"]["epochs"] == 1
    results = {name: json.loads((out / "runs" / name / "result.json").read_text())
               for name in ("fold0_n2_s1_none", "fold0_n2_s1_late", "fold0_nall_s1_none", "fold0_nall_s1_late")}
    from freq_transforms.data import make_split

    split = make_split(str(data), [6, 1, 1], split_seed=0, seed=1, n_train=2)  # what the bundle's own keys draw
    assert _images(split["train"]) == sorted(Path(c).name for c in results["fold0_n2_s1_none"]["train_cases"])
    assert len(split["train"]) == 2
    for n in ("2", "all"):
        none, late = results[f"fold0_n{n}_s1_none"], results[f"fold0_n{n}_s1_late"]
        assert none["train_cases"] == late["train_cases"] and set(none["test"]) == set(late["test"])
        assert set(none["test"]) == {Path(p).name.replace(".nii.gz", "") for p in _images(split["test"])}
    assert len(results["fold0_nall_s1_none"]["train_cases"]) == 6
    report = (out / "trial.md").read_text()
    assert "split by the bundle" in report and "| all | late v2 |" in report and "late v2" in first.stdout
    assert (out / "trial.png").stat().st_size > 1000

    stamp = (out / "runs" / "fold0_n2_s1_none" / "result.json").stat().st_mtime_ns
    again = cli_runner.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "4 runs (0 to do)" in again.stdout
    assert (out / "runs" / "fold0_n2_s1_none" / "result.json").stat().st_mtime_ns == stamp

    shared = tmp_path / "shared"  # results without weights or predictions redo the same report
    exported = cli_runner.run([sys.executable, "-m", "freq_transforms", "export", str(out), str(shared)],
                              capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert not list(shared.rglob("*.pt")) and not list(shared.rglob("*.nii.gz"))
    assert (shared / "trial.md").read_text() == report

    from freq_transforms.trial import compare_folders

    assert "A - B 0.00 [0.00, 0.00]" in compare_folders(out, shared, 2, "late", "late")
    assert "A - B" in compare_folders(out, out, None, "late", "none")
    empty = cli_runner.run([sys.executable, "-m", "freq_transforms", "export", str(tmp_path / "nothing"),
                            str(tmp_path / "empty")], capture_output=True, text=True, timeout=300)
    assert empty.returncode == 2 and empty.stderr.startswith("error: no finished trial under")
    assert not (tmp_path / "empty").exists()


@pytest.mark.slow
def test_cross_validation_tests_every_case_once_and_keeps_duplicates_together(tmp_path):
    import shutil

    data = write_phantom_dataset("heart", tmp_path / "data", n=7, seed=2, progress=False)
    shutil.copy(data / "imagesTr" / "heart_003.nii.gz", data / "imagesTr" / "heart_copy.nii.gz")  # one image, two labels
    meta = json.loads((data / "dataset.json").read_text())
    meta["training"].append({"image": "./imagesTr/heart_copy.nii.gz", "label": "./labelsTr/heart_000.nii.gz"})
    (data / "dataset.json").write_text(json.dumps(meta))
    out = tmp_path / "cv"
    cmd = _sweep_cmd("heart_mri_fd_segmentation", data, out, "--n_train", "2", "--fusion", "none,early", "--seeds", "0",
                     "--folds", "3", overrides="'check_data': False, 'sampling': 'resize', ")
    result = cli_runner.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for fusion in ("none", "early"):
        tested = []
        for fold in range(3):
            run = json.loads((out / "runs" / f"fold{fold}_n2_s0_{fusion}" / "result.json").read_text())
            parts = {"train": {Path(c).name.replace(".nii.gz", "") for c in run["train_cases"]},
                     "val": set(run["val"]), "test": set(run["test"])}
            copies = [part for part, names in parts.items() if {"heart_003", "heart_copy"} & names]
            assert len(copies) <= 1 and not (parts["train"] & parts["test"]) and not (parts["val"] & parts["test"])
            tested += sorted(parts["test"])
        assert sorted(tested) == sorted(p.name.replace(".nii.gz", "") for p in (data / "imagesTr").iterdir())
    summary = json.loads((out / "trial.json").read_text())
    assert [c["cases"] for c in summary["comparisons"]] == [8]  # FD - none paired over all 8 cases of the folds


@pytest.mark.parametrize("args, line", [
    (["--n_train", "99"], "error: the bundle could not list its cases at train#dataset#data (DataError: dataset "
                          "check failed: n_train=99 is larger than the train part (6 cases of 8))"),
    (["--arch", "v2,paper"], "error: --arch takes one layout per sweep"),
])
def test_a_sweep_that_cannot_run_stops_in_one_line_before_any_run(args, line, tmp_path):
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=8, seed=4, progress=False)
    cmd = _sweep_cmd("hippocampus_mri_fd_segmentation", data, tmp_path / "out", *args,
                     overrides="'split_ratio': [6, 1, 1], ")
    result = cli_runner.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert result.stderr.startswith(line)
    assert not (tmp_path / "out" / "runs").exists()


def test_sweep_with_a_wrong_dataset_stops_with_one_line_before_any_run(tmp_path):
    cmd = [sys.executable, "-m", "freq_transforms", "sweep", "--bundle", str(ROOT / "bundles" / "hippocampus_mri_fd_segmentation"),
           "--dataset_dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), "--n_train", "2", "--epochs", "1"]
    result = cli_runner.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: dataset_dir {tmp_path / 'nowhere'} does not exist or is not a folder"]
    assert not (tmp_path / "out").exists()


def test_the_bundle_split_needs_the_bundles_own_keys(zoo, tmp_path):
    from freq_transforms.trial import TrialError, run_trial

    data = write_phantom_dataset("spleen", tmp_path / "data", n=6, seed=0, shape=[24, 24, 16], progress=False)
    with pytest.raises(TrialError, match=r"^--split bundle needs the bundle's own n_train, seed key\(s\)"):
        run_trial(zoo / "spleen_ct_segmentation", data, tmp_path / "out", [2], [0], ["none"], split="bundle",
                  estimate=False)


def test_fd_minus_none_pairs_only_the_seeds_both_sides_ran_and_worst_class_shows_a_lost_class():
    from freq_transforms.lab.records import _paired_with_none, _worst_class_dice

    def record(seed, dice, classes=None):
        return {"seed": seed, "files": ["a", "b", "c"], "dice": dice, "class_dice": classes or {}}

    none = [record(0, [0.5, 0.6, 0.7]), record(1, [0.5, 0.6, 0.7]), record(2, [0.0, 0.0, 0.0])]
    fd = [record(0, [0.6, 0.7, 0.8]), record(1, [0.6, 0.7, 0.8])]
    text = _paired_with_none(fd, none)
    assert text.startswith("10.00 [10.00, 10.00]") and text.endswith("(seeds 0 1)")  # seed 2 of none left out
    lost = [record(0, [0.4] * 3, {"class0": [0.8, 0.8, 0.8], "class1": [0.0, 0.0, 0.0]})]
    assert _worst_class_dice(lost) == 0.0 and _worst_class_dice(fd) is None


def test_compare_pairs_a_trial_with_sweep_records_and_can_restrict_to_one_seed(tmp_path):
    from freq_transforms.trial import TrialError, compare_folders

    old = tmp_path / "old"  # the sweep's records, as docs/results keeps them
    for name, seed, arch, dice in (("n4_early_s0", 0, "v2", [0.8, 0.6]), ("n4_early_s1", 1, "v2", [0.0, 0.0]),
                                   ("n4_early_paper_s0", 0, "paper", [0.7, 0.5])):
        run = old / "runs" / name
        run.mkdir(parents=True)
        (run / "done.json").write_text(json.dumps({"n_train": 4, "fusion": "early", "arch": arch, "seed": seed,
                                                   "files": ["a.nii.gz", "b.nii.gz"], "dice": dice,
                                                   "hd95": [1.0, 1.0], "val_dice": 0.5, "train_part": 8}))
    assert "A - B 10.00 [10.00, 10.00]" in compare_folders(old, old, 4, "early", "early", "v2", "paper", seed=0)
    new = tmp_path / "new"  # a trial: per-class scores per case, cases named by stem
    (new / "runs" / "fold0_n4_s0_early").mkdir(parents=True)
    (new / "plan.json").write_text(json.dumps({"layout": "v2"}))
    (new / "runs" / "fold0_n4_s0_early" / "result.json").write_text(json.dumps(
        {"n": 4, "seed": 0, "fusion": "early", "fold": 0, "test": {"a": {"dice": [0.6, 0.8]}, "b": {"dice": [0.5, 0.5]}}}))
    assert "2 test cases: A 60.00, B 60.00, A - B 0.00" in compare_folders(new, old, 4, "early", "early", "v2", "paper",
                                                                           seed=0)
    with pytest.raises(TrialError, match="no finished run with n_train=8, fusion=early"):
        compare_folders(new, old, 8, "early", "early")
    (old / "runs" / "n4_none_s0").mkdir()
    (old / "runs" / "n4_none_s0" / "done.json").write_text(json.dumps(
        {"n_train": 4, "fusion": "none", "seed": 0, "files": ["a.nii.gz", "b.nii.gz"], "dice": [0.5, 0.5]}))
    said = cli_runner.run([sys.executable, "-m", "freq_transforms", "compare", str(old), str(old), "--n_train", "4",
                           "--fusion_a", "early", "--arch_a", "v2", "--fusion_b", "none", "--seed", "0"],
                          capture_output=True, text=True, timeout=300)
    assert "A 70.00, B 50.00, A - B 20.00" in said.stdout, said.stderr  # "none" is the fusion, not a null


def test_image_fingerprints_are_hashed_once_per_file_version(tmp_path, monkeypatch):
    """participant_groups runs at every train and evaluate start: each image is hashed once, again only when it
    changes."""
    import os
    from unittest import mock

    from freq_transforms import data
    from freq_transforms.data import fingerprints

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
    """An empty prediction has no HD95 (NaN, as MONAI returns): the demo reports through the records' table,
    which leaves such cases out of HD95 and keeps them in Dice."""
    import math

    from freq_transforms.lab import demo

    def fake_run(bundle, run_dir, common, n, fusion, seed, epochs, test_dir, logging_file, train_overrides=None):
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


def test_demo_runs_in_patch_mode_with_a_bar_that_counts_epochs(tmp_path, capsys):
    """The main job with sampling patch: patches, sliding-window evaluation, the table and the figure; its one
    progress bar moves with every epoch of every run (and each evaluation), and nothing else reaches the console."""
    from freq_transforms.lab import demo

    bundle = Path(__file__).resolve().parents[1] / "bundles" / "hippocampus_mri_fd_segmentation"
    report = demo.run_demo(tmp_path / "out", bundle, 8, 2, 1, ["none", "early"], 0, iterations_per_epoch=2,
                           sampling="patch", backbone="UNet").read_text()
    assert "(backbone `UNet`," in report and "--backbone UNet" in report
    assert "sampling `patch`), 2 epochs of 2 steps" in report and "--sampling patch" in report
    err = capsys.readouterr().err
    assert all(f"| {k}/6 [" in err for k in range(1, 7)), err[-2000:]
    assert "Warning" not in err and "Loading dataset" not in err
    assert (tmp_path / "out" / "demo.png").stat().st_size > 10_000
    for fusion in ("none", "early"):
        rows = (tmp_path / "out" / "runs" / f"fusion_{fusion}" / "eval" / "validation_metrics.csv").read_text()
        assert [int(r.split(",")[1]) for r in rows.splitlines()[1:]] == [2, 4]  # budget in iterations
