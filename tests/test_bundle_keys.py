"""Every key of every bundle config is a setting of the one schema (freq_transforms.bundle.settings), listed in its
``settings`` component, and reads as written on the real ``monai.bundle run`` command line: ``--augment False`` and
``--n_train None`` (what fire reads as a boolean and null); ``--augment false`` (fire hands over the word) and any
other bad value stop in one line naming the key, before anything is written.

The keys are read from the schema, so a key added later is covered.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Dict, List

import pytest

import cli_runner
from freq_transforms.bundle.build import config_settings
from freq_transforms.bundle.schema import settings_table

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
GROUPS = {  # each config as a user runs it (the bundle README's command lines)
    "train": ["configs/train.json"],
    "evaluate": ["configs/train.json", "configs/evaluate.json"],
    "inference": ["configs/inference.json"],
    "multi_gpu_train": ["configs/train.json", "configs/multi_gpu_train.json"],
}
SOME_VALUE = {"n_train": 3, "folds": 5, "test_dataset_dir": "/elsewhere", "members": 5, "steps": 1000,
              "lr_schedule": "poly", "amp": False}


def _group_keys(group: str) -> List[str]:
    names = [Path(f).stem for f in GROUPS[group]]
    return [key for key in settings_table() if any(name in settings_table()[key].read_by for name in names)]


def _resolved(files: List[str], overrides: Dict[str, object]) -> Dict[str, object]:
    """The ``settings`` component as a real run resolves it; nothing else runs."""
    args = [arg for key, value in overrides.items() for arg in (f"--{key}", str(value))]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str([str(BUNDLE / f) for f in files]),
           "--bundle_root", str(BUNDLE), "--initialize", "[]", "--run", "['$print(\"RESOLVED\", dict(@settings))']",
           *args]
    result = cli_runner.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(l for l in result.stdout.splitlines() if l.startswith("RESOLVED "))
    return ast.literal_eval(line[len("RESOLVED "):])


@pytest.mark.parametrize("bundle", sorted(p.name for p in (ROOT / "bundles").iterdir() if p.is_dir()))
def test_each_config_sets_and_lists_its_settings_and_refers_to_no_other(bundle):
    for name in ("train", "inference"):
        config = json.loads((ROOT / "bundles" / bundle / "configs" / f"{name}.json").read_text())
        keys = config_settings(name)
        assert [k for k in config if k in settings_table()] == keys
        assert [k for k in config["settings"] if k != "_target_"] == keys
        assert all(config["settings"][k] == f"@{k}" for k in keys)
        referred = set(re.findall(r"@(\w+)", json.dumps(config))) & set(settings_table())
        assert referred <= set(keys), f"{name}.json refers to settings it does not set: {referred - set(keys)}"


@pytest.mark.parametrize("group", ["train", "inference", *(pytest.param(g, marks=pytest.mark.slow)
                                                           for g in ("evaluate", "multi_gpu_train"))])
def test_each_boolean_and_nullable_key_reads_as_fire_passes_it(group):
    table = settings_table()
    flags = [k for k in _group_keys(group) if table[k].kind.get("type") == "boolean" and not table[k].nullable]
    nullables = [k for k in _group_keys(group) if table[k].nullable]
    assert flags and nullables
    resolved = _resolved(GROUPS[group], {**{k: "False" for k in flags}, **{k: "None" for k in nullables}})
    assert {k: resolved[k] for k in flags} == {k: False for k in flags}
    assert {k: resolved[k] for k in nullables if k != "lr_schedule"} == \
        {k: None for k in nullables if k != "lr_schedule"}
    resolved = _resolved(GROUPS[group], {**{k: "True" for k in flags}, **{k: SOME_VALUE[k] for k in nullables}})
    assert {k: resolved[k] for k in flags} == {k: True for k in flags}
    assert {k: resolved[k] for k in nullables} == {k: SOME_VALUE[k] for k in nullables}


@pytest.mark.parametrize("group,key,value,line", [
    ("train", "resume", "maybe", "error: resume must be true or false, got 'maybe'"),
    ("train", "augment", "false", "error: augment must be true or false, got 'false' (pass --augment False: "
                                  "monai.bundle's fire reads only that as the value)"),
    ("train", "n_train", "null", "error: n_train must be a positive integer or null, got 'null' (pass --n_train None: "
                                 "monai.bundle's fire reads only that as the value)"),
    ("train", "folds", "one", "error: folds must be an integer >= 2 or null, got 'one'"),
    ("inference", "separate_folder", "sometimes", "error: separate_folder must be true or false, got 'sometimes'"),
    ("evaluate", "save_predictions", "2", "error: save_predictions must be true or false, got 2"),
])
def test_a_bad_value_stops_in_one_line_before_anything_is_written(group, key, value, line, tmp_path):
    root = tmp_path / "bundle"
    shutil.copytree(BUNDLE, root, ignore=shutil.ignore_patterns("models"))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(GROUPS[group]), "--bundle_root",
           str(root), "--dataset_dir", str(tmp_path / "no_data"), f"--{key}", value]
    result = cli_runner.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and result.stderr.strip().splitlines()[-1] == line, result.stderr[-1500:]
    assert "Traceback" not in result.stderr
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


@pytest.mark.parametrize("override,line", [
    (["--epoch", "2"], "error: --epoch names no key of the bundle's configs (did you mean --epochs?)"),
    (["--validate#dataloader#num_workerz", "0"],
     "error: --validate#dataloader#num_workerz: DataLoader takes no keyword 'num_workerz' (did you mean num_workers?)"),
])
def test_an_unknown_override_stops_naming_the_nearest_key_before_anything_is_written(override, line, tmp_path):
    root = tmp_path / "bundle"
    shutil.copytree(BUNDLE, root, ignore=shutil.ignore_patterns("models"))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json", "--bundle_root",
           str(root), "--dataset_dir", str(tmp_path / "no_data"), *override]
    result = cli_runner.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and result.stderr.strip().splitlines()[-1] == line, result.stderr[-1500:]
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_nested_ids_new_keywords_and_run_options_pass_the_override_check():
    overrides = {"validate#dataloader#num_workers": 0, "validate#handlers#0#_disabled_": "true",
                 "network_def#spatial_dims": 3, "train#dataloader#pin_memory": "false", "logging_file":
                 str(BUNDLE / "configs" / "logging.conf"), "meta_file": str(BUNDLE / "configs" / "metadata.json")}
    assert set(_resolved(GROUPS["train"], overrides)) >= {"augment", "n_train"}


def test_programs_that_run_a_bundle_in_process_are_not_checked():
    """MONAI Label (and the lab) set their own keys in-process; only a monai.bundle run command line is checked."""
    from freq_transforms.bundle.overrides import check_overrides
    from freq_transforms.errors import SettingsError

    config = str(BUNDLE / "configs" / "train.json")
    check_overrides(["/usr/bin/monailabel", "start_server", "--config_file", config, "--epoch", "2"])
    with pytest.raises(SettingsError, match="did you mean --epochs"):
        check_overrides(["/x/monai/bundle/__main__.py", "run", "--config_file", config, "--epoch", "2"])
