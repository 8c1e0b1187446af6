"""Every boolean and nullable key of every bundle config means what it says on the real ``monai.bundle run``
command line (fire hands ``--augment false`` and ``--n_train null`` over as strings), and a bad value stops in one
line before anything is written.

The keys are read from the configs (the ``flags`` and ``optional`` components), so a key added later is covered.
"""

from __future__ import annotations

import ast
import shutil
import sys
from pathlib import Path
from typing import Dict, List

import pytest

import cli_runner

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "hippocampus_mri_fd_segmentation"
GROUPS = {  # each config as a user runs it (the bundle README's command lines)
    "train": ["configs/train.json"],
    "evaluate": ["configs/train.json", "configs/evaluate.json"],
    "inference": ["configs/inference.json"],
    "multi_gpu_train": ["configs/train.json", "configs/multi_gpu_train.json"],
}
FALSE_WORDS, TRUE_WORDS = ["false", "FALSE", "0", "no", "False"], ["true", "True", "1", "YES", "t"]
NULL_WORDS = ["null", "NULL", "None"]
SOME_VALUE = {"n_train": 3, "folds": 5, "test_dataset_dir": "/elsewhere", "members": 5, "steps": 1000}


def _component_keys(files: List[str], component: str) -> List[str]:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(BUNDLE / f) for f in files])
    found = parser.get(component) or {}
    return sorted(k for k in found if k != "_target_")


def _defaults(files: List[str]) -> Dict[str, object]:
    from monai.bundle import ConfigParser

    return ConfigParser.load_config_files([str(BUNDLE / f) for f in files])


def _resolved(files: List[str], overrides: Dict[str, object]) -> Dict[str, object]:
    """The ``flags`` and ``optional`` components as a real run resolves them; only the settings check runs."""
    args = [arg for key, value in overrides.items() for arg in (f"--{key}", str(value))]
    has_optional = bool(_component_keys(files, "optional"))
    shown = "{**dict(@flags), **dict(@optional)}" if has_optional else "dict(@flags)"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str([str(BUNDLE / f) for f in files]),
           "--bundle_root", str(BUNDLE), "--initialize", "['$@settings_check']",
           "--run", f"['$print(\"RESOLVED\", {shown})']", *args]
    result = cli_runner.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(l for l in result.stdout.splitlines() if l.startswith("RESOLVED "))
    return ast.literal_eval(line[len("RESOLVED "):])


@pytest.mark.parametrize("group", list(GROUPS))
def test_each_boolean_and_nullable_key_reads_as_written(group):
    files = GROUPS[group]
    flags, nullables = _component_keys(files, "flags"), _component_keys(files, "optional")
    assert flags, f"{group} has no flags component"
    defaults = _defaults(files)
    assert {k for k, v in defaults.items() if v is None} <= set(nullables), "a key whose default is null is not read " \
        "through the optional component"
    assert {k for k, v in defaults.items() if isinstance(v, bool)} <= set(flags), "a boolean key is not in flags"
    off = {key: FALSE_WORDS[i % len(FALSE_WORDS)] for i, key in enumerate(flags)}
    off.update({key: NULL_WORDS[i % len(NULL_WORDS)] for i, key in enumerate(nullables)})
    resolved = _resolved(files, off)
    assert {k: resolved[k] for k in flags} == {k: False for k in flags}
    assert {k: resolved[k] for k in nullables} == {k: None for k in nullables}
    on = {key: TRUE_WORDS[i % len(TRUE_WORDS)] for i, key in enumerate(flags)}
    on.update({key: SOME_VALUE[key] for key in nullables})
    resolved = _resolved(files, on)
    assert {k: resolved[k] for k in flags} == {k: True for k in flags}
    assert {k: resolved[k] for k in nullables} == {k: SOME_VALUE[k] for k in nullables}


@pytest.mark.parametrize("group,key,value,line", [
    ("train", "resume", "maybe", "error: resume must be true or false, got 'maybe'"),
    ("train", "n_train", "nul", "error: n_train must be a positive integer, got 'nul'"),
    ("train", "folds", "one", "error: folds must be an integer >= 2 (or null for split_ratio), got 'one'"),
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
    from freq_transforms.bundle_checks import check_overrides
    from freq_transforms.errors import SettingsError

    config = str(BUNDLE / "configs" / "train.json")
    check_overrides(["/usr/bin/monailabel", "start_server", "--config_file", config, "--epoch", "2"])
    with pytest.raises(SettingsError, match="did you mean --epochs"):
        check_overrides(["/x/monai/bundle/__main__.py", "run", "--config_file", config, "--epoch", "2"])
