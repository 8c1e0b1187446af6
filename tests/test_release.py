"""Release archives, model_info.json, version discipline, and the round trip through monai.bundle download."""

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import nibabel as nib
import pytest
import torch

import cli_runner
from freq_transforms.lab.phantoms import write_phantom_dataset
from freq_transforms.bundle.release import ReleaseError, bundle_files, content_hash, release

ROOT = Path(__file__).resolve().parents[1]
HIPPO = "hippocampus_mri_fd_segmentation"
VERSION = json.loads((ROOT / "bundles" / HIPPO / "configs" / "metadata.json").read_text())["version"]
SMALL_NET = "{'channels': (8, 16, 32), 'strides': (2, 2), 'num_res_units': 1}"


@pytest.fixture
def bundles(tmp_path):
    copy = tmp_path / "bundles"
    shutil.copytree(ROOT / "bundles", copy, ignore=shutil.ignore_patterns("eval", "model_info.json", "models"))
    return copy


def _with_weights(bundles: Path) -> Path:
    """Give the hippocampus copy a small models/model.pt, as a trained bundle has."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundles / HIPPO / "configs" / "inference.json"))
    parser["backbone"] = "UNet"
    parser["backbone_kwargs"] = {"channels": (8, 16, 32), "strides": (2, 2), "num_res_units": 1}
    torch.manual_seed(0)
    (bundles / HIPPO / "models").mkdir()
    torch.save(parser.get_parsed_content("network_def").state_dict(), bundles / HIPPO / "models" / "model.pt")
    return bundles / HIPPO / "models" / "model.pt"


def test_zips_are_reproducible_and_laid_out_like_the_zoo(bundles, tmp_path):
    _with_weights(bundles)
    (bundles / HIPPO / "eval").mkdir()
    (bundles / HIPPO / "eval" / "metrics.csv").write_text("x")
    (bundles / HIPPO / "models" / "resume.pt").write_bytes(b"state")
    (bundles / HIPPO / "models" / "fold1").mkdir()
    (bundles / HIPPO / "models" / "fold1" / "model.pt").write_bytes(b"member")
    (bundles / HIPPO / "models" / "previous" / "20261204-101010").mkdir(parents=True)  # weights set aside by training
    (bundles / HIPPO / "models" / "previous" / "20261204-101010" / "model.pt").write_bytes(b"earlier")
    first = release(bundles, tmp_path / "a", registry=tmp_path / "r1.json")
    time.sleep(1.1)  # a different wall-clock second must not change the bytes
    second = release(bundles, tmp_path / "b", registry=tmp_path / "r2.json")
    assert len(first) == 5
    for key in first:
        assert (tmp_path / "a" / f"{key}.zip").read_bytes() == (tmp_path / "b" / f"{key}.zip").read_bytes()
        assert first[key]["checksum"] == second[key]["checksum"]
    names = zipfile.ZipFile(tmp_path / "a" / f"{HIPPO}_v{VERSION}.zip").namelist()
    assert {n.split("/")[0] for n in names} == {HIPPO}
    assert f"{HIPPO}/models/model.pt" in names and f"{HIPPO}/configs/train.json" in names
    assert f"{HIPPO}/models/fold1/model.pt" in names
    assert not any("/eval/" in n or "resume" in n or "__pycache__" in n or "previous" in n for n in names)


def test_model_info_format_and_merge(bundles, tmp_path):
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "model_info.json").write_text(json.dumps({"old_bundle_v0.0.1": {"checksum": "abc", "source": "x"}}))
    new = release(bundles, dist, base_url="https://example.org/releases", registry=tmp_path / "reg.json")
    index = json.loads((dist / "model_info.json").read_text())
    assert "old_bundle_v0.0.1" in index
    key = f"{HIPPO}_v{VERSION}"
    assert index[key] == new[key]
    assert index[key]["source"] == f"https://example.org/releases/{key}.zip"
    assert index[key]["checksum"] == hashlib.sha1((dist / f"{key}.zip").read_bytes()).hexdigest()


def test_changed_content_without_new_version_is_refused(bundles, tmp_path):
    registry = tmp_path / "reg.json"
    release(bundles, tmp_path / "d1", registry=registry)
    readme = bundles / HIPPO / "docs" / "README.md"
    readme.write_text(readme.read_text() + "\nchanged\n")
    before = sorted(p.name for p in (tmp_path / "d1").iterdir())
    with pytest.raises(ReleaseError, match=f"{HIPPO}: content changed since {HIPPO}_v{VERSION} was released"):
        release(bundles, tmp_path / "d1", registry=registry)
    assert sorted(p.name for p in (tmp_path / "d1").iterdir()) == before
    meta_path = bundles / HIPPO / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = "99.0.0"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ReleaseError, match="version 99.0.0 has no 'changelog' entry"):
        release(bundles, tmp_path / "d1", registry=registry)
    meta["changelog"]["99.0.0"] = "docs"
    meta_path.write_text(json.dumps(meta))
    new = release(bundles, tmp_path / "d1", registry=registry)
    assert f"{HIPPO}_v99.0.0" in new
    assert f"{HIPPO}_v{VERSION}" in json.loads((tmp_path / "d1" / "model_info.json").read_text())


def test_repository_registry_records_every_bundle_version_as_it_is():
    """bundles/model_info.json holds each bundle's current version with its content hash: a bundle changed without
    a version bump, or a new version never recorded, fails here."""
    registry = json.loads((ROOT / "bundles" / "model_info.json").read_text())
    bundles = sorted(p for p in (ROOT / "bundles").iterdir() if (p / "configs").is_dir())
    assert len(bundles) == 5
    for bundle in bundles:
        version = json.loads((bundle / "configs" / "metadata.json").read_text())["version"]
        key = f"{bundle.name}_v{version}"
        assert key in registry, (f"{key} is not in bundles/model_info.json: run python -m freq_transforms release "
                                 "--out <scratch folder> to record it")
        assert registry[key]["content_sha256"] == content_hash(bundle, bundle_files(bundle)), \
            f"{bundle.name} changed after {key} was recorded: bump its version in bundle_source/tasks/{bundle.name}.json"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    yield root, url
    server.terminate()  # stopped by its own PID
    server.wait(timeout=10)


def _monai(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return cli_runner.run([sys.executable, "-m", "monai.bundle", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_round_trip_through_monai_bundle_download(bundles, http_server, tmp_path):
    served, url = http_server
    weights = _with_weights(bundles)
    release(bundles, served, base_url=url, registry=tmp_path / "reg.json")
    index = json.loads((served / "model_info.json").read_text())
    key = f"{HIPPO}_v{VERSION}"
    received = tmp_path / "received"
    result = _monai("download", "--name", HIPPO, "--url", index[key]["source"], "--bundle_dir", str(received))
    assert result.returncode == 0, result.stderr[-2000:]
    downloaded_zip = received / f"{HIPPO}.zip"
    assert hashlib.sha1(downloaded_zip.read_bytes()).hexdigest() == index[key]["checksum"]
    bundle = received / HIPPO
    assert (bundle / "models" / "model.pt").read_bytes() == weights.read_bytes()

    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=3, seed=9, progress=False)
    image = data / "imagesTr" / "hippocampus_000.nii.gz"
    out = tmp_path / "pred"
    result = _monai("run", "--config_file", "configs/inference.json", "--input_dir", str(image), "--output_dir",
                    str(out), "--backbone", "UNet", "--backbone_kwargs", SMALL_NET, "--num_workers", "0", "--dataset_dir", str(data),
                    cwd=bundle)
    assert result.returncode == 0, result.stderr[-2000:]
    pred = nib.load(str(out / "hippocampus_000_seg.nii.gz"))
    assert pred.shape == nib.load(str(image)).shape


def test_large_files_hosted_apart_download_and_hash_check(bundles, http_server, tmp_path):
    served, url = http_server
    weights = _with_weights(bundles)
    member = weights.parent / "fold1" / "model.pt"  # an ensemble member: same file name, other folder
    member.parent.mkdir()
    member.write_bytes(b"member 1")
    release(bundles, served, base_url=url, weights_url=f"{url}/weights", registry=tmp_path / "reg.json")
    key = f"{HIPPO}_v{VERSION}"
    with zipfile.ZipFile(served / f"{key}.zip") as archive:
        assert not [n for n in archive.namelist() if n.startswith(f"{HIPPO}/models/")]
        archive.extractall(tmp_path / "received")
    bundle = tmp_path / "received" / HIPPO
    yml = (bundle / "large_files.yml").read_text()
    assert f"{url}/weights/{key}/model.pt" in yml and hashlib.md5(weights.read_bytes()).hexdigest() in yml
    assert f"{url}/weights/{key}/fold1/model.pt" in yml
    result = _monai("download_large_files", "--bundle_path", str(bundle))
    assert result.returncode == 0, result.stderr[-2000:]
    assert (bundle / "models" / "model.pt").read_bytes() == weights.read_bytes()
    assert (bundle / "models" / "fold1" / "model.pt").read_bytes() == b"member 1"

    (bundle / "models" / "model.pt").unlink()
    (bundle / "large_files.yml").write_text(yml.replace(hashlib.md5(weights.read_bytes()).hexdigest(), "0" * 32))
    result = _monai("download_large_files", "--bundle_path", str(bundle))
    assert result.returncode != 0
    assert "md5" in (result.stdout + result.stderr).lower() and "check" in (result.stdout + result.stderr).lower()
