"""What a MONAI user meets first: the installed package carries the repository's bundles, MONAI's own loading and
export commands work on them as written, and a mistake on the way is one line."""

import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import cli_runner
from freq_transforms.bundle.paths import shipped_weights
from freq_transforms.lab.phantoms import write_phantom_dataset
from freq_transforms.networks import FrequencyDisentangledNet
from freq_transforms.recipe import read_state_dict

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p.parent.parent.name for p in (ROOT / "bundles").glob("*/configs/train.json"))
WITH_WEIGHTS = [name for name in BUNDLES if (ROOT / "bundles" / name / "models" / "model.pt").is_file()]
HEART = "heart_mri_fd_segmentation"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The package's wheel, built from this checkout as pip builds it."""
    import importlib.util

    out = tmp_path_factory.mktemp("wheel")
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation, "-w", str(out),
                    str(ROOT)], check=True, timeout=600)
    return next(out.glob("freq_transforms-*.whl"))


def test_the_wheel_carries_every_weights_file_the_bundles_ship(wheel):
    with zipfile.ZipFile(wheel) as archive:
        packed = {n for n in archive.namelist() if "/models/" in n}
    shipped = {f"freq_transforms/bundles/{p.relative_to(ROOT / 'bundles').as_posix()}"
               for name in BUNDLES for p in shipped_weights(ROOT / "bundles" / name)}
    assert f"freq_transforms/bundles/{HEART}/models/fold1/model.pt" in shipped  # the default's second member
    assert f"freq_transforms/bundles/{HEART}/models/accurate/fold1/model.pt" in shipped  # an option's member
    assert shipped <= packed, sorted(shipped - packed)


def _fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed; its dependencies are this interpreter's (a path entry, so the checkout's
    editable install, a .pth hook of that site folder, is not seen)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = [p for p in sys.path if p.endswith("site-packages")]
    (Path(site) / "borrowed_dependencies.pth").write_text("\n".join(ours) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True, timeout=600)
    return python


@pytest.mark.slow
def test_the_installed_heart_bundle_averages_the_members_of_its_default_and_of_its_accurate_option(wheel, tmp_path):
    python = _fresh_venv(tmp_path, wheel)
    where = subprocess.run([str(python), "-m", "freq_transforms", "bundles", "list"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    line = next(row for row in where.splitlines() if HEART in row)
    assert "site-packages" in line and "fold1/model.pt, accurate/fold0/model.pt, accurate/fold1/model.pt" in line
    bundle = Path(line.split(": ", 1)[1])
    data = write_phantom_dataset("heart", tmp_path / "data", n=1, seed=3, shape=(48, 48, 32), progress=False)
    for option, members in (([], bundle / "models"), (["accurate.json"], bundle / "models" / "accurate")):
        configs = json.dumps([str(bundle / "configs" / name) for name in ("inference.json", *option)])
        out = tmp_path / f"out_{len(option)}"
        result = subprocess.run([str(python), "-m", "monai.bundle", "run", "--config_file", configs, "--bundle_root",
                                 str(bundle), "--input_dir", str(data / "imagesTr"), "--output_dir", str(out),
                                 "--num_workers", "0"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"ensemble of 2: fold0, fold1 (under {members})" in result.stdout + result.stderr
        assert len(list(out.glob("*_seg.nii.gz"))) == 1


def test_bundles_list_says_where_each_bundle_is_its_version_and_weights():
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "bundles", "list"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = {row.split()[0]: row for row in result.stdout.splitlines()[1:]}
    assert sorted(rows) == BUNDLES
    for name, row in rows.items():
        version = json.loads((ROOT / "bundles" / name / "configs" / "metadata.json").read_text())["version"]
        assert f"{name} {version} (" in row and row.endswith(str(ROOT / "bundles" / name))
        assert ("no weights" in row) == (name not in WITH_WEIGHTS)
    assert ("(model.pt, fold0/model.pt, fold1/model.pt, accurate/fold0/model.pt, accurate/fold1/model.pt, "
            "accurate/model.pt)") in rows[HEART]


LOAD = """
import json, sys, monai.bundle, torch
net = monai.bundle.load(name=sys.argv[1], bundle_dir=sys.argv[2], source="github", workflow_type="inference")
torch.manual_seed(0)
x = torch.rand(1, 1, *json.loads(sys.argv[3]))
with torch.no_grad():
    torch.save({"type": type(net).__name__, "out": net.eval()(x), "x": x}, sys.argv[4])
"""


@pytest.mark.parametrize("name", WITH_WEIGHTS)
def test_monai_bundle_load_and_from_weights_give_the_shipped_network_without_any_data(name, tmp_path):
    """No data folder exists here (dataset_dir is /workspace/data/...): building the workflow reads none."""
    bundle = ROOT / "bundles" / name
    config = json.loads((bundle / "configs" / "inference.json").read_text())
    assert not Path(config["dataset_dir"]).exists()
    size = config["patch_size"]
    result = subprocess.run([sys.executable, "-c", LOAD, name, str(ROOT / "bundles"), json.dumps(size),
                             str(tmp_path / "out.pt")], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = torch.load(tmp_path / "out.pt", weights_only=True)
    assert loaded["type"] == "FrequencyDisentangledNet"
    net = FrequencyDisentangledNet.from_weights(bundle / "models" / "model.pt")
    assert not net.training and "deep_supervision" not in net.config["backbone_kwargs"]
    state = read_state_dict(bundle / "models" / "model.pt")
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, state[key])
    with torch.no_grad():
        torch.testing.assert_close(net(loaded["x"]), loaded["out"], atol=1e-5, rtol=1e-5)


def test_from_weights_names_a_missing_file_or_one_without_a_record(tmp_path):
    from freq_transforms.errors import DataError

    with pytest.raises(DataError, match="nope.pt does not exist"):
        FrequencyDisentangledNet.from_weights(tmp_path / "nope.pt")
    torch.save(torch.nn.Conv3d(1, 2, 1).state_dict(), tmp_path / "plain.pt")
    with pytest.raises(DataError, match="plain.pt carries no recipe record"):
        FrequencyDisentangledNet.from_weights(tmp_path / "plain.pt")


def _readme_command(bundle: Path, command: str) -> list:
    """The bundle README's line that starts with ``command``, continuation lines joined, as a shell splits it."""
    text = (bundle / "docs" / "README.md").read_text().replace("\\\n", " ")
    line = next(row for row in text.splitlines() if row.startswith(command + " "))
    return [sys.executable, *shlex.split(line)[1:]]


def _bundle_with_weights(name: str, tmp_path: Path):
    """A copy of the bundle, with fresh weights where it ships none, and its inference config parsed."""
    from monai.bundle import ConfigParser

    bundle = tmp_path / name
    shutil.copytree(ROOT / "bundles" / name, bundle)
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    if not (bundle / "models" / "model.pt").is_file():
        (bundle / "models").mkdir()
        torch.save(parser.get_parsed_content("network_def").state_dict(), bundle / "models" / "model.pt")
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True),
                        strict=False)
    size = parser["patch_size"] if parser["sampling"] == "patch" else parser["spatial_size"]
    return bundle, net.eval(), torch.rand(1, 1, *size, generator=torch.Generator().manual_seed(0))


def _ok(cmd: list, cwd: Path) -> None:
    result = cli_runner.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("name", BUNDLES)
def test_the_zoo_checks_and_torchscript_export_work_as_each_readme_writes_them(name, tmp_path):
    """What the model zoo's verify_bundle.py runs: verify_net_in_out and ckpt_export of the inference config with
    its defaults; the TorchScript file computes what the shipped (or, without weights, fresh) network does."""
    bundle, net, x = _bundle_with_weights(name, tmp_path)
    _ok([sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def", "--meta_file",
         "configs/metadata.json", "--config_file", "configs/inference.json"], bundle)
    _ok(_readme_command(bundle, "python -m monai.bundle ckpt_export"), bundle)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(str(bundle / "models" / "model.ts"))(x), net(x),
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLES)
def test_the_onnx_export_works_as_each_readme_writes_it(name, tmp_path):
    """The README's onnx_export line and the line that stamps the recipe into it: onnxruntime computes what torch
    does, and the file carries the weights' recipe."""
    import onnxruntime

    from freq_transforms.recipe import read_recipe

    bundle, net, x = _bundle_with_weights(name, tmp_path)
    _ok(_readme_command(bundle, "python -m monai.bundle onnx_export"), bundle)
    _ok(_readme_command(bundle, "python -m freq_transforms recipe models/model.pt --into"), bundle)
    session = onnxruntime.InferenceSession(str(bundle / "models" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    with torch.no_grad():
        expected = net(x)
    assert float((got - expected).abs().max()) < 1e-4 * max(1.0, float(expected.abs().max()))
    assert read_recipe(bundle / "models" / "model.onnx") == read_recipe(bundle / "models" / "model.pt")


def test_weights_with_training_heads_load_into_the_inference_network_with_a_reason(caplog):
    from freq_transforms.networks.checkpoint import load_weights

    bundle = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"  # DynUNet trained with deep supervision
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    net = parser.get_parsed_content("network_def")
    with caplog.at_level("INFO", logger="freq_transforms.networks.checkpoint"):
        load_weights(net, bundle / "models" / "model.pt")
    assert "training-only heads (deep supervision) left out" in caplog.text


def test_inference_without_a_bundle_root_stops_in_one_line(tmp_path):
    """Run from a folder that is not the bundle (the installed bundle's configs, bundle_root "."): one error line
    saying which file is missing and how to point at it; no traceback on either stream."""
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=1, seed=2, progress=False)
    config = ROOT / "bundles" / "hippocampus_mri_fd_segmentation" / "configs" / "inference.json"
    result = cli_runner.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(config),
                             "--input_dir", str(data / "imagesTr"), "--num_workers", "0"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    errors = [row for row in result.stderr.splitlines() if row.startswith("error: ")]
    assert len(errors) == 1 and "checkpoint models/model.pt does not exist" in errors[0]
    assert "--bundle_root" in errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert "FutureWarning" not in result.stderr


def test_a_command_that_needs_a_missing_module_says_what_to_install(tmp_path, monkeypatch, capsys):
    """``python -m freq_transforms onnx`` without onnx installed: one line naming the package."""
    from freq_transforms.cli import main as cli

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(SystemExit) as stop:
        cli.main(["onnx", str(ROOT / "bundles" / "hippocampus_mri_fd_segmentation"), "--out",
                  str(tmp_path / "model.onnx")])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.fullmatch(r"error: onnx(script)? is not installed: pip install onnx(script)?", err[0])
    assert not (tmp_path / "model.onnx").exists()


OVERLAID_NET = {"_target_": "UNet", "spatial_dims": 2, "in_channels": 3, "out_channels": 2, "channels": [8, 16],
                "strides": [2], "num_res_units": 0}


def test_the_overlay_reads_only_the_sections_a_bundle_has(tmp_path):
    """A bundle whose train config has no ``validate`` section, and an evaluate config with a network_def of its own
    that sets ``validate#handlers`` (the zoo's HoVerNet bundle lays its configs out this way)."""
    root = tmp_path / "bundle"
    (root / "configs").mkdir(parents=True)
    train = {"imports": ["$import torch"], "device": "cpu", "patch_size": [64, 64], "network_def": OVERLAID_NET,
             "network": "$@network_def.to(@device)",
             "train": {"inferer": {"_target_": "SimpleInferer"}, "handlers": []}}
    evaluate = {"network_def": OVERLAID_NET, "validate#handlers": [{"_target_": "StatsHandler"}],
                "evaluating": ["$@validate#evaluator.run()"]}
    (root / "configs" / "train.json").write_text(json.dumps(train))
    (root / "configs" / "evaluate.json").write_text(json.dumps(evaluate))
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "overlay", str(root)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (root / "configs" / "fd_overlay.json").is_file()
    overlay = json.loads((root / "configs" / "fd_overlay.json").read_text())
    assert overlay["network_def"]["probe_size"] == [64, 64]
    assert "evaluate: python -m monai.bundle run --config_file \"['configs/train.json','configs/evaluate.json'," \
           "'configs/fd_overlay.json']\"" in result.stdout


def test_the_readmes_python_example_runs_as_written(tmp_path, monkeypatch):
    """The front page's "In Python" block, run in a folder with one image file: the shipped network loads both ways
    and computes the same, and the workflow writes one label map on the image's grid."""
    import nibabel as nib

    readme = (ROOT / "README.md").read_text()
    code = readme.split("## In Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=1, seed=5, progress=False)
    image = next((data / "imagesTr").glob("*.nii.gz"))
    shutil.copy(image, tmp_path / "case.nii.gz")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["logits"].shape == (1, 3, 64, 64, 48)
    x = torch.rand(1, 1, 64, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(scope["net"].eval()(x), scope["same"](x))
    label = nib.load(str(tmp_path / "predictions" / "case_seg.nii.gz"))
    assert label.shape == nib.load(str(image)).shape


DICT_NET = """
import torch
from torch import nn

class TwoTasks(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.first(x)
        return {"nucleus_prediction": y[:, :2], "type_prediction": y}
"""


def test_the_overlay_refuses_a_network_with_several_outputs_in_one_line(tmp_path):
    """HoVerNet returns a dict of task outputs: one line naming them, nothing written."""
    root = tmp_path / "bundle"
    (root / "configs").mkdir(parents=True)
    (root / "scripts").mkdir()
    (root / "scripts" / "__init__.py").write_text("")
    (root / "scripts" / "net.py").write_text(DICT_NET)
    train = {"patch_size": [32, 32], "network_def": {"_target_": "scripts.net.TwoTasks"},
             "network": "$@network_def.to('cpu')"}
    (root / "configs" / "train.json").write_text(json.dumps(train))
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "overlay", str(root)], capture_output=True,
                            text=True, timeout=300)
    for module in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
        del sys.modules[module]
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "TwoTasks returns a dict (nucleus_prediction, type_prediction), not class logits" in result.stderr
    assert not (root / "configs" / "fd_overlay.json").exists()
