"""What a new user meets first: inference that names a bad file, overrides checked before anything is written,
a command line that explains itself and stops on a mistyped option."""

import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cli_runner
from freq_transforms.cli import fire as strict_fire, main as cli
from freq_transforms.lab.phantoms import write_phantom_dataset

ROOT = Path(__file__).resolve().parents[1]
HIPPO = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"


def _bundle_run(*args: str, cwd: Path = HIPPO) -> subprocess.CompletedProcess:
    return cli_runner.run([sys.executable, "-m", "monai.bundle", "run", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _error_lines(result: subprocess.CompletedProcess) -> list:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Three good hippocampus images, one truncated, one not an image at all."""
    root = tmp_path_factory.mktemp("inputs")
    data = write_phantom_dataset("hippocampus", root / "data", n=4, seed=3, shape=[32, 32, 24], progress=False)
    folder = root / "in"
    folder.mkdir()
    for image in sorted((data / "imagesTr").iterdir()):
        shutil.copy(image, folder / image.name)
    truncated = folder / "hippocampus_001.nii.gz"
    truncated.write_bytes(truncated.read_bytes()[:3000])
    (folder / "notes.nii.gz").write_text("not an image")
    return folder


def test_inference_names_each_bad_input_predicts_the_rest_and_fails(inputs, tmp_path):
    out = tmp_path / "out"
    result = _bundle_run("--config_file", "configs/inference.json", "--input_dir", str(inputs),
                         "--output_dir", str(out), "--num_workers", "0")
    log = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in log
    assert sorted(p.name for p in out.iterdir()) == ["hippocampus_000_seg.nii.gz", "hippocampus_002_seg.nii.gz",
                                                     "hippocampus_003_seg.nii.gz"]  # nothing for the bad ones
    assert f"input check failed: {inputs / 'hippocampus_001.nii.gz'} is corrupt or truncated" in log
    assert f"input check failed: {inputs / 'notes.nii.gz'} is not a readable NIfTI file" in log
    assert _error_lines(result) == ["error: 2 of 5 inputs could not be read and were not segmented: "
                                    "hippocampus_001.nii.gz, notes.nii.gz (reasons above)"]


def test_monailabel_style_preprocessing_names_a_truncated_file(inputs):
    """MONAI Label applies inference.json's preprocessing itself (never its initialize/run): the first transform
    checks the file and raises one line naming it."""
    from monai.bundle import ConfigParser

    from freq_transforms.data import DataError

    parser = ConfigParser()
    parser.read_config(str(HIPPO / "configs" / "inference.json"))
    check = parser.get_parsed_content("preprocessing").transforms[0]
    bad = inputs / "hippocampus_001.nii.gz"
    with pytest.raises(DataError, match=f"^{bad} is corrupt or truncated"):
        check({"image": str(bad)})
    assert check({"image": str(inputs / "hippocampus_000.nii.gz")})["image"].endswith("hippocampus_000.nii.gz")


@pytest.mark.parametrize("override,line", [
    (["--spatial_size", "[64,64]"], "error: spatial_size must be 3 positive integers, got [64, 64]"),
    (["--fusion", "erly"], "error: fusion must be one of none, early, late, got 'erly'"),
    (["--intensity", "zscore"], "error: intensity must be one of paper, ct_window, percentile, got 'zscore'"),
    (["--num_classes", "4"], "error: class_names has 3 names but num_classes is 4: give one name per class, "
                             "background first"),
])
def test_a_wrong_override_is_one_line_and_writes_nothing(override, line, tmp_path):
    """Checked before the shipped weights are set aside or split.json is written."""
    root = tmp_path / "bundle"
    shutil.copytree(HIPPO / "models", root / "models")
    shipped = (root / "models" / "model.pt").read_bytes()
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=4, seed=1, shape=[32, 32, 24], progress=False)
    result = _bundle_run("--config_file", "configs/train.json", "--bundle_root", str(root), "--dataset_dir",
                         str(data), "--epochs", "1", *override)
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr
    assert _error_lines(result) == [line]
    assert sorted(p.name for p in root.rglob("*")) == ["model.pt", "models"]  # no previous/, no eval/split.json
    assert (root / "models" / "model.pt").read_bytes() == shipped


def test_every_command_and_option_explains_itself():
    top = cli_runner.run([sys.executable, "-m", "freq_transforms", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert top.returncode == 0 and top.stdout.startswith("usage: python -m freq_transforms <command>")
    assert "'\"'\"'" not in top.stdout
    for name, fn in cli.COMMANDS.items():
        assert f"  {name}  " in top.stdout or f"  {name} " in top.stdout
        text = strict_fire.command_help(cli.PROG, name, fn)
        described = strict_fire.described_options(fn)
        for parameter in inspect.signature(fn).parameters:
            assert described.get(parameter), f"{name}: option --{parameter} has no description"
            assert f"--{parameter} (" in text
    split_help = cli_runner.run([sys.executable, "-m", "freq_transforms", "split", "--help"], capture_output=True,
                                text=True, timeout=60)
    assert "--list_cases (bool, flag, default False)" in split_help.stdout
    assert "training cases to use (default: the whole train part)." in split_help.stdout


def test_help_does_not_import_torch():
    code = ("import sys; from freq_transforms.cli import main as cli; cli.COMMANDS; cli.command_help(cli.PROG, 'split', cli.COMMANDS['split']); "
            "print('torch' in sys.modules, 'monai' in sys.modules)")
    result = cli_runner.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("argv,line", [
    (["release", "--bundles", "bundles", "--out", "{tmp}/dist", "--registry", "x"],
     "error: release has no option --registry (did you mean --weights_url?)"),
    (["split", "{tmp}/data", "--n_trian", "2"], "error: split has no option --n_trian (did you mean --n_train?)"),
    (["phantoms", "hippocampus", "{tmp}/p", "--sahpe", "8,8,8"],
     "error: phantoms has no option --sahpe (did you mean --shape?)"),
    (["sweep", "--bundle", "x", "--dataset_dir", "y", "--out", "{tmp}/s", "--epoch", "2"],
     "error: sweep has no option --epoch (did you mean --epochs?)"),
    (["split", "{tmp}/data", "--list_cases", "sometimes"], "error: --list_cases must be true or false, got 'sometimes'"),
    (["spilt", "{tmp}/data"], "error: unknown command 'spilt' (did you mean split?); commands: demo, phantoms, "
                              "split, figure, curve, sweep, export, compare, bench, contrast, overlay, recipe, "
                              "release, trial, onnx, bundles build, bundles list"),
])
def test_a_mistyped_option_stops_before_anything_runs(argv, line, tmp_path):
    write_phantom_dataset("hippocampus", tmp_path / "data", n=4, seed=0, shape=[16, 16, 12], progress=False)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    registry = (ROOT / "bundles" / "model_info.json").read_bytes()
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", *[a.format(tmp=tmp_path) for a in argv]],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [line]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    assert (ROOT / "bundles" / "model_info.json").read_bytes() == registry


def test_split_lists_the_cases_of_each_part(tmp_path, capsys):
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=6, seed=0, shape=[16, 16, 12], progress=False)
    cli.main(["split", str(data), "--split_ratio", "4,1,1", "--list_cases"])
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if not line.startswith("  ")] == ["train: 4", "val: 1", "test: 1"]
    names = sorted(line.strip() for line in lines if line.startswith("  "))
    assert names == sorted(p.name for p in (data / "imagesTr").iterdir())


@pytest.mark.parametrize("argv,listed", [
    (["--list_cases"], True), (["--list_cases", "true"], True), (["--list_cases=yes"], True),
    (["--list_cases", "false"], False), (["--list_cases=False"], False), (["--list_cases", "0"], False),
])
def test_a_boolean_option_means_what_it_says(argv, listed, tmp_path, capsys):
    """Fire would pass ``--list_cases false`` on as the string 'false' (true); every spelling reads as written."""
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=6, seed=0, shape=[16, 16, 12], progress=False)
    cli.main(["split", str(data), "--split_ratio", "4,1,1", *argv])
    assert any(line.startswith("  ") for line in capsys.readouterr().out.splitlines()) == listed


def test_a_positional_boolean_means_what_it_says(tmp_path, capsys):
    """split's ninth parameter is list_cases: given positionally as 'false' it reached fire as the string (true)."""
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=6, seed=0, shape=[16, 16, 12], progress=False)
    for word, listed in (("false", False), ("True", True)):
        cli.main(["split", str(data), "4,1,1", "0", "0", "None", "None", "None", "0", word])
        assert any(line.startswith("  ") for line in capsys.readouterr().out.splitlines()) == listed


@pytest.mark.parametrize("argv,line", [
    (["--list_cases="], "error: --list_cases must be true or false, got ''"),
    (["--list_cases", "maybe"], "error: --list_cases must be true or false, got 'maybe'"),
    (["--n_train", "nul"], "error: --n_train must be an integer or null, got 'nul'"),
    (["--split_seed", "x"], "error: --split_seed must be an integer, got 'x'"),
])
def test_an_empty_or_bad_boolean_or_number_stops_in_one_line(argv, line, tmp_path, capsys):
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=6, seed=0, shape=[16, 16, 12], progress=False)
    with pytest.raises(SystemExit) as stop:
        cli.main(["split", str(data), *argv])
    assert stop.value.code == 2 and capsys.readouterr().err.strip().splitlines() == [line]


@pytest.mark.parametrize("argv,train", [
    (["--n_train", "null"], 4), (["--n_train=NULL", "--folds", "None"], 4), (["--n_train", "2"], 2),
    (["4,1,1", "0", "0", "null"], 4),  # positional: split_ratio, split_seed, seed, n_train
])
def test_null_means_none_for_an_option_whose_default_is_none(argv, train, tmp_path, capsys):
    """fire hands ``--n_train null`` over as the string 'null', which the option's own help offers."""
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=6, seed=0, shape=[16, 16, 12], progress=False)
    ratio = [] if argv[0] == "4,1,1" else ["--split_ratio", "4,1,1"]
    cli.main(["split", str(data), *ratio, *argv])
    assert capsys.readouterr().out.splitlines()[0] == f"train: {train}"


def test_the_demo_page_shows_the_demo_table_as_the_demo_prints_it():
    """docs/demo.md's table is a copy of what ``bash ci/demo.sh`` printed: the same columns as the summary
    table the demo writes (it once showed 6 of its 10 columns)."""
    from freq_transforms.lab.records import SUMMARY_HEADER

    section = (Path(__file__).resolve().parents[1] / "docs" / "demo.md").read_text()
    tables = [line for line in section.splitlines() if line.startswith("| task ")]
    assert tables == [SUMMARY_HEADER]
    rows = [line for line in section.splitlines() if line.startswith("| hippocampus phantoms |")]
    assert len(rows) == 2 and all(row.count("|") == SUMMARY_HEADER.count("|") for row in rows)


def test_the_front_page_is_short_and_starts_with_the_two_commands():
    """A new user meets the two commands first and a page of at most 200 lines; the rest lives under docs/, and
    every page the front page links to exists."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[:2] for line in first_block] == [["bash", "ci/demo.sh"], ["bash", "ci/test.sh"]]
    import re

    for link in re.findall(r"\]\((docs/[^)#]+)\)", readme):
        assert (root / link).is_file(), link
