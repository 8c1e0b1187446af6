"""The trial (``python -m freq_transforms trial``) on phantoms: this project's hippocampus bundle and the two real
zoo bundles in ../shared/zoo with tiny budgets; pairing and nesting of the split; resume; one-line refusals."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

import cli_runner
from freq_transforms.lab.phantoms import write_image_label_pairs, write_phantom_dataset
from freq_transforms.trial import TrialError, run_trial
from freq_transforms.trial.one_run import seeded_initialize
from freq_transforms.trial.plan import trial_runs, trial_splits
from freq_transforms.bundle.configs import Bundle
from freq_transforms.trial.wiring import bundle_cases, wire_bundle

ROOT = Path(__file__).resolve().parents[1]
HIPPO = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
HIPPO_SMALL = {"epochs": 1, "num_workers": 0, "cache_rate": 0, "patch_size": [32, 32, 24], "iterations_per_epoch": 2,
               "samples_per_volume": 2, "target_spacing": "median",
               "backbone": "UNet", "backbone_kwargs": {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1}}


@pytest.fixture(scope="module")
def hippocampus_cases(tmp_path_factory):
    return write_phantom_dataset("hippocampus", tmp_path_factory.mktemp("hippo") / "data", n=12, seed=3,
                                 progress=False)


def test_the_seed_is_the_trials_and_the_bundle_keeps_its_initialisation():
    assert seeded_initialize(["$monai.utils.set_determinism(seed=123)", "$x()"], 4) == [
        "$monai.utils.set_determinism(seed=4)", "$x()"]
    assert seeded_initialize(["$@settings_check", "$monai.utils.set_determinism(seed=@seed)"], 2)[1] == \
        "$monai.utils.set_determinism(seed=2)"
    assert seeded_initialize(None, 1) == ["$monai.utils.set_determinism(seed=1)"]


@pytest.mark.parametrize("bundle,ids", [
    ("hippocampus", ("train#dataset#data", "validate#dataset#data", "dataset#data", "train#trainer#max_epochs")),
    ("spleen_ct_segmentation", ("train#dataset#data", "validate#dataset#data", "dataset#data",
                                "train#trainer#max_epochs")),
    ("segmentation_template", ("train_dataset#data", "val_dataset#data", "dataset#data", "trainer#max_epochs")),
])
def test_the_data_ids_are_found_by_following_the_configs_references(bundle, ids, zoo):
    root = HIPPO if bundle == "hippocampus" else zoo / bundle
    wiring = wire_bundle(Bundle(root))
    assert (wiring.train_data, wiring.val_data, wiring.infer_data, wiring.max_epochs) == ids


def test_the_split_is_paired_nested_and_keeps_one_image_in_one_part(hippocampus_cases, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(hippocampus_cases, data)
    images = sorted((data / "imagesTr").iterdir())
    twin = data / "imagesTr" / "hippocampus_twin.nii.gz"  # one image listed twice (as MSD heart la_005/la_026)
    shutil.copy(images[0], twin)
    shutil.copy(data / "labelsTr" / images[0].name, data / "labelsTr" / twin.name)
    listing = json.loads((data / "dataset.json").read_text())
    listing["training"].append({"image": f"./imagesTr/{twin.name}", "label": f"./labelsTr/{twin.name}"})
    (data / "dataset.json").write_text(json.dumps(listing))
    cases, keys = bundle_cases(wire_bundle(Bundle(HIPPO)), data, tmp_path / "scratch")
    assert len(cases) == 13 and keys == ["image"]
    for folds in (None, 3):
        splits = trial_splits(cases, "image", [2, 4], [0, 1], folds=folds)
        for split in splits:
            parts = {name: {c["image"] for c in part} for name, part in
                     (("pool", split.pool), ("val", split.val), ("test", split.test))}
            assert not (parts["pool"] & parts["val"]) and not (parts["pool"] & parts["test"])
            twins = [name for name, part in parts.items() if {str(images[0]), str(twin)} & part]
            assert len(twins) == 1 and {str(images[0]), str(twin)} <= parts[twins[0]]
            for seed in (0, 1):
                assert split.train(2, seed) == split.train(4, seed)[:2]
            assert split.train(4, 0) != split.train(4, 1)
        if folds:  # every case tested once
            assert sorted(c["image"] for s in splits for c in s.test) == sorted(c["image"] for c in cases)
    external = cases[:3]  # --test_dir: its cases are the test part, the dataset gives pool and validation
    [split] = trial_splits(cases[3:], "image", [2], [0], test_cases=external)
    assert split.test == external and len(split.pool) + len(split.val) == len(cases) - 3
    runs = trial_runs(splits, [2, 4], [0], ["none", "early"])
    assert [r.name for r in runs][:2] == ["fold0_n2_s0_none", "fold0_n2_s0_early"]
    with pytest.raises(TrialError, match="n_train 9 is more than the 7 training cases"):
        trial_splits(cases, "image", [9], [0])


@pytest.mark.slow
def test_hippocampus_trial_pairs_fusions_reports_and_resumes(hippocampus_cases, tmp_path):
    out = tmp_path / "trial"
    plan = []
    summary = run_trial(HIPPO, hippocampus_cases, out, n_train=[2], seeds=[0], fusions=["none", "early"],
                        overrides={**HIPPO_SMALL, "epochs": 3}, estimate=True, log=plan.append)
    # the plan first, before anything is timed; then the one timed epoch, then the estimate
    assert re.search(r"2 runs \(2 to do\), 12 cases; per fold pool \[\d+\], validation \[\d+\], test \[\d+\]; "
                     r"3 epochs per run \(epochs\)$", plan[0]), plan[0]
    assert plan[1].startswith("timing one epoch of fold0_n2_s0_none (n = 2)")
    assert re.match(r"about \d+ min \(3 epochs per run at about [\d.]+ s each", plan[2]), plan[2]
    report = json.loads((out / "trial.json").read_text())
    none, early = (next(r for r in report["runs"] if r["fusion"] == f) for f in ("none", "early"))
    assert none["train_cases"] == early["train_cases"] and len(none["train_cases"]) == 2
    assert sorted(none["test"]) == sorted(early["test"]) and len(none["test"]) >= 2
    assert sorted(none["val"]) == sorted(early["val"])
    dice = [d for r in report["runs"] for case in r["test"].values() for d in case["dice"]]
    assert dice and all(0 <= d <= 1 for d in dice)
    [comparison] = summary["comparisons"]
    assert comparison["verdict"].startswith("early v2 ") and "at n = 2" in comparison["verdict"]
    assert "[" not in comparison["verdict"] or "did not learn" in comparison["verdict"]  # 2 test cases: no CI
    assert "| 2 | early v2 |" in (out / "trial.md").read_text() and (out / "trial.png").stat().st_size > 1000
    # resumed: the finished runs are kept; a missing one is run again, alone
    kept = (out / "runs" / "fold0_n2_s0_none" / "result.json").stat().st_mtime
    (out / "runs" / "fold0_n2_s0_early" / "result.json").unlink()
    lines = []
    run_trial(HIPPO, hippocampus_cases, out, n_train=[2], seeds=[0], fusions=["none", "early"],
              overrides={**HIPPO_SMALL, "epochs": 3}, estimate=True, log=lines.append)
    assert "2 runs (1 to do)" in lines[0] and "s per run, from the runs done" in lines[1]
    assert (out / "runs" / "fold0_n2_s0_none" / "result.json").stat().st_mtime == kept
    assert (out / "runs" / "fold0_n2_s0_early" / "result.json").is_file()


def test_the_plan_stops_in_one_line_when_a_part_would_be_empty(tmp_path):
    data = write_phantom_dataset("hippocampus", tmp_path / "few", n=2, seed=1, progress=False)
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "trial", str(HIPPO), str(data),
                             str(tmp_path / "out"), "--n_train", "1", "--estimate", "false"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: the ")
    assert "would be empty" in result.stderr and not (tmp_path / "out" / "runs").exists()


def test_a_misspelt_override_stops_naming_the_nearest_key(hippocampus_cases, tmp_path):
    with pytest.raises(TrialError, match=r"--overrides: epoch names no key of the bundle's configs \(did you mean "
                                         r"--epochs\?\)"):
        run_trial(HIPPO, hippocampus_cases, tmp_path / "out", n_train=[2], seeds=[0], overrides={"epoch": 1},
                  estimate=False, log=lambda line: None)


@pytest.mark.usefixtures("zoo")
def test_a_bundle_the_overlay_refuses_stops_before_training(zoo, tmp_path):
    root = tmp_path / "template"
    shutil.copytree(zoo / "segmentation_template", root)
    train = (root / "configs" / "train.yaml").read_text()
    refused = ("network_def:\n  _target_: FlexibleUNet\n  in_channels: 1\n  out_channels: '@num_classes'\n"
               "  backbone: efficientnet-b0\n  spatial_dims: 2\n")
    start = train.index("network_def:")
    (root / "configs" / "train.yaml").write_text(train[:start] + refused + train[train.index("network:", start):])
    write_image_label_pairs(root / "data", n=6, num_classes=4, shape=(32, 32, 32), seed=0)
    with pytest.raises(TrialError, match="fusion early cannot be tried on template: .*found no conv reading the input"):
        run_trial(root, root / "data", tmp_path / "out", n_train=[2], seeds=[0], fusions=["none", "early"],
                  estimate=False, log=lambda line: None)
    assert not (tmp_path / "out" / "runs").exists()


TEMPLATE_SMALL = {"num_epochs": 1, "num_workers": 0, "batch_size": 2}
SPLEEN_SMALL = {"epochs": 1, "train#dataset#num_workers": 0, "train#dataloader#num_workers": 0,
                "validate#dataloader#num_workers": 0, "validate#inferer#sw_batch_size": 1,
                "dataloader#num_workers": 0}


@pytest.mark.slow
@pytest.mark.parametrize("bundle", ["segmentation_template", "spleen_ct_segmentation"])
def test_zoo_bundle_trial_on_phantoms(bundle, zoo, tmp_path):
    if bundle == "segmentation_template":
        data = tmp_path / "data"
        write_image_label_pairs(data, n=7, num_classes=4, shape=(32, 32, 32), seed=2)
        overrides = TEMPLATE_SMALL
    else:
        data = write_phantom_dataset("spleen", tmp_path / "data", n=7, seed=4, shape=[38, 38, 34], progress=False)
        overrides = SPLEEN_SMALL
    out = tmp_path / "trial"
    summary = run_trial(zoo / bundle, data, out, n_train=[2], seeds=[0], fusions=["none", "early"],
                        overrides=overrides, estimate=False, log=lambda line: None)
    report = json.loads((out / "trial.json").read_text())
    assert len(report["runs"]) == 2 and len(summary["comparisons"]) == 1
    for run in report["runs"]:
        assert run["test"] and all(len(case["dice"]) == report["plan"]["classes"] - 1 for case in run["test"].values())
    assert not any((zoo / bundle / "configs").glob("fd_overlay.json"))  # the user's bundle is left as it was


@pytest.mark.parametrize("interval,cases,dice,said", [
    ((0.012, 0.008, 0.017), 42, (0.86, 0.85), "early v2 +1.2 [0.8, 1.7]: gain at n = 4 (CI above +0.5 points)"),
    ((-0.014, -0.021, -0.007), 42, (0.84, 0.85), "early v2 -1.4 [-2.1, -0.7]: loss at n = 4 (CI below -0.5 points)"),
    ((0.001, -0.003, 0.004), 42, (0.85, 0.85), "early v2 +0.1 [-0.3, 0.4]: level at n = 4 (CI within ±0.5 points)"),
    ((0.003, -0.002, 0.009), 42, (0.85, 0.85),
     "early v2 +0.3 [-0.2, 0.9]: inconclusive at n = 4 (CI reaches beyond ±0.5 points)"),
    # the zoo template on 2 phantom test cases once said "evidence of a gain" for +0.03 [0.02, 0.03]
    ((0.0003, 0.0002, 0.0003), 2, (0.86, 0.85),
     "early v2 +0.0 at n = 4: 2 test cases, too few for an interval (at least 10, --min_cases)"),
    # neither model learned (test Dice about 0.9 %): no comparison is worded from it
    ((0.0003, -0.002, 0.003), 42, (0.009, 0.008),
     "early v2 at n = 4: did not learn (test Dice 0.9, none 0.8): raise the budget"),
])
def test_verdicts_are_worded_against_a_margin_of_practical_equivalence(interval, cases, dice, said):
    from freq_transforms.metrics import Interval
    from freq_transforms.trial.report import verdict

    assert verdict("early", 4, Interval(*interval), cases, dice) == said


def test_a_wider_margin_turns_a_gain_level_and_a_bad_margin_is_one_line(tmp_path):
    from freq_transforms.metrics import Interval
    from freq_transforms.trial.report import VerdictRules, verdict

    assert ": level at" in verdict("early", 4, Interval(0.012, 0.008, 0.017), 42, (0.86, 0.85), VerdictRules(margin=2))
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "trial", str(HIPPO), str(tmp_path), str(tmp_path),
                             "--margin", "-1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --margin must be a number of Dice points >= 0, got -1"]


def test_a_trial_estimated_above_max_hours_stops_before_its_first_run(hippocampus_cases, tmp_path):
    """The plan line comes first, then one timed epoch; above --max_hours one line names --yes and the budget key,
    and no run folder is written."""
    out = tmp_path / "trial"
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "trial", str(HIPPO), str(hippocampus_cases),
                             str(out), "--n_train", "2", "--seeds", "0", "--fusion", "none,early", "--overrides",
                             json.dumps({**HIPPO_SMALL, "epochs": 1000}), "--max_hours", "0.01"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    printed = result.stdout.splitlines()
    assert "1000 epochs per run (epochs)" in printed[0] and printed[1].startswith("timing one epoch")
    [line] = result.stderr.strip().splitlines()[-1:]
    assert re.fullmatch(r"error: the trial would take about [\d.]+ h, above --max_hours 0.01: pass --yes to run it "
                        r"anyway, or lower the budget, e.g. --overrides \"\{'epochs': \d+\}\"", line), line
    assert not (out / "runs").exists()


def test_only_names_a_run_of_the_plan_or_stops_in_one_line_listing_them(hippocampus_cases, tmp_path):
    with pytest.raises(TrialError, match=r"^--only 'fold0_n2_s0_erly' is no run of this plan: give a name "
                                         r"\(fold0_n2_s0_none, fold0_n2_s0_early\) or an index 0\.\.1$"):
        run_trial(HIPPO, hippocampus_cases, tmp_path / "out", n_train=[2], seeds=[0], fusions=["none", "early"],
                  overrides=HIPPO_SMALL, only="fold0_n2_s0_erly")
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.slow
def test_only_runs_one_run_each_as_a_job_array_and_a_plain_call_reports_without_training(hippocampus_cases,
                                                                                         tmp_path):
    out, common = tmp_path / "trial", dict(n_train=[2], seeds=[0], fusions=["none", "early"],
                                           overrides={**HIPPO_SMALL, "epochs": 2})
    first = run_trial(HIPPO, hippocampus_cases, out, only="0", **common)  # as $SLURM_ARRAY_TASK_ID gives it
    assert first["only"] == "fold0_n2_s0_none" and first["done"] == 1 and not (out / "trial.md").exists()
    run_trial(HIPPO, hippocampus_cases, out, only="fold0_n2_s0_early", **common)
    kept = {name: (out / "runs" / name / "result.json").stat().st_mtime for name in ("fold0_n2_s0_none",
                                                                                    "fold0_n2_s0_early")}
    lines = []
    summary = run_trial(HIPPO, hippocampus_cases, out, log=lines.append, **common)
    assert "2 runs (0 to do)" in lines[0] and len(summary["comparisons"]) == 1 and (out / "trial.md").is_file()
    assert kept == {name: (out / "runs" / name / "result.json").stat().st_mtime for name in kept}
    assert not list(out.glob("scratch*"))
