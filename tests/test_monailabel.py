"""Every bundle in a real MONAI Label 0.8.5 server (``monaibundle`` app): /info, inference, one training round.

Needs MONAI Label in the interpreter (``bash ci/monailabel_e2e.sh`` builds that environment and runs this
file); elsewhere the module is skipped. The server runs from a temporary folder with the package imported
as installed, like a user's, and is stopped by its own PID.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("monailabel", reason="MONAI Label not installed: run bash ci/monailabel_e2e.sh")
requests = pytest.importorskip("requests")

from freq_transforms.lab.phantoms import write_phantom_dataset  # noqa: E402
from freq_transforms.lab.runner import run_bundle  # noqa: E402

pytestmark = pytest.mark.monailabel

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = {
    "hippocampus_mri_fd_segmentation": "hippocampus",
    "red_nucleus_qsm_fd_segmentation": "red_nucleus",
    "dentate_nucleus_qsm_fd_segmentation": "dentate_nucleus",
    "spleen_ct_fd_segmentation": "spleen",
    "heart_mri_fd_segmentation": "heart",
}
TRAINED = "hippocampus_mri_fd_segmentation"  # the bundle trained through MONAI Label (smallest volumes)
STARTUP_TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _phantom_weights(bundle: Path, data: Path) -> None:
    """A few steps on phantoms with each bundle's own grid (resize: a small one, conv weights do not depend on
    it; patch: the bundle's patches and spacing, short epochs)."""
    run_bundle(bundle, ["train"], bundle_root=str(bundle), dataset_dir=str(data), epochs=3, val_interval=1,
               num_workers=0, spatial_size=[32, 32, 24], iterations_per_epoch=2, samples_per_volume=1)
    shutil.rmtree(bundle / "eval", ignore_errors=True)
    for leftover in (bundle / "models").glob("resume.pt*"):
        leftover.unlink()
    assert (bundle / "models" / "model.pt").is_file()


def _averages_members(bundle: Path) -> bool:
    return json.loads((bundle / "configs" / "inference.json").read_text()).get("ensemble") is True


def _phantom_members(bundle: Path, data: Path) -> None:
    """A bundle whose inference averages its fold models gets two: its phantom weights and another seed's."""
    other = bundle.parent.parent / f"{bundle.name}_seed1"
    shutil.copytree(bundle, other, ignore=shutil.ignore_patterns("models"))
    run_bundle(other, ["train"], bundle_root=str(other), dataset_dir=str(data), epochs=3, val_interval=1,
               num_workers=0, spatial_size=[32, 32, 24], iterations_per_epoch=2, samples_per_volume=1, seed=1)
    for k, weights in enumerate((bundle / "models" / "model.pt", other / "models" / "model.pt")):
        (bundle / "models" / f"fold{k}").mkdir()
        shutil.copy(weights, bundle / "models" / f"fold{k}" / "model.pt")
    shutil.rmtree(other)


def _studies(root: Path, data: Dict[str, Path]) -> Dict[str, str]:
    """One unlabelled phantom per task, plus three labelled hippocampus phantoms for training."""
    studies = root / "studies"
    (studies / "labels" / "final").mkdir(parents=True)
    images = {}
    for name, task in BUNDLES.items():
        source = data[task] / "imagesTr" / f"{task}_000.nii.gz"
        shutil.copy(source, studies / f"{task}_000.nii.gz")
        images[name] = f"{task}_000"
    broken = studies / "broken_000.nii.gz"  # a truncated upload: inference must name it
    broken.write_bytes((data["hippocampus"] / "imagesTr" / "hippocampus_004.nii.gz").read_bytes()[:3000])
    for i in (1, 2, 3):
        shutil.copy(data["hippocampus"] / "imagesTr" / f"hippocampus_00{i}.nii.gz", studies)
        shutil.copy(data["hippocampus"] / "labelsTr" / f"hippocampus_00{i}.nii.gz", studies / "labels" / "final")
    return images


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("monailabel")
    subprocess.run([sys.executable, "-m", "monailabel.main", "apps", "--download", "--name", "monaibundle",
                    "--output", str(root / "apps")], check=True, capture_output=True, cwd=root, timeout=120)
    data = {task: write_phantom_dataset(task, root / "phantoms" / task, n=6, seed=3, progress=False,
                                        shape=None if task == "hippocampus" else (48, 48, 40))
            for task in BUNDLES.values()}
    for name, task in BUNDLES.items():
        bundle = root / "apps" / "monaibundle" / "model" / name
        shutil.copytree(ROOT / "bundles" / name, bundle, ignore=shutil.ignore_patterns("eval", "models"))
        _phantom_weights(bundle, data[task])
        if _averages_members(bundle):
            _phantom_members(bundle, data[task])
    return root, _studies(root, data)


@pytest.fixture(scope="module")
def server(workspace):
    root, images = workspace
    port = _free_port()
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", str(root / "apps" / "monaibundle"),
           "--studies", str(root / "studies"), "--conf", "models", ",".join(BUNDLES), "--conf", "zoo_source",
           "github", "--conf", "sam2", "false", "--host", "127.0.0.1", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the package as installed, no source tree
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}; log {root / 'server.log'}:\n"
                        + (root / "server.log").read_text()[-3000:])
        try:
            if requests.get(f"{url}/info/", timeout=5).ok:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"server not up after {STARTUP_TIMEOUT} s; log {root / 'server.log'}")
        time.sleep(2)
    yield url, root, images
    os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group (its PID), nothing else
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    log.close()


def _declared_labels(name: str) -> Dict[str, int]:
    meta = json.loads((ROOT / "bundles" / name / "configs" / "metadata.json").read_text())
    channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    return {label: int(index) for index, label in channel_def.items() if label.lower() != "background"}


def _infer(url: str, name: str, image: str, out: Path) -> np.ndarray:
    response = requests.post(f"{url}/infer/{name}", params={"image": image, "output": "image"}, timeout=600)
    assert response.ok, f"/infer/{name}: {response.status_code} {response.text[:2000]}"
    out.write_bytes(response.content)
    return np.asarray(nib.load(str(out)).dataobj)


def test_info_lists_every_bundle_with_its_labels(server):
    url, _, _ = server
    info = requests.get(f"{url}/info/", timeout=30).json()
    for name in BUNDLES:
        assert name in info["models"], f"{name} missing from /info/ models: {sorted(info['models'])}"
        assert info["models"][name]["labels"] == _declared_labels(name)
        assert name in info["trainers"]


@pytest.mark.parametrize("name", list(BUNDLES))
def test_infer_returns_labels_on_the_input_grid(server, name):
    url, root, images = server
    pred_path = root / f"pred_{name}.nii.gz"
    pred = _infer(url, name, images[name], pred_path)
    source = nib.load(str(root / "studies" / f"{images[name]}.nii.gz"))
    assert pred.shape == source.shape
    np.testing.assert_allclose(nib.load(str(pred_path)).affine, source.affine, atol=1e-3)
    values = set(np.unique(pred).astype(int).tolist())
    assert values <= {0, *_declared_labels(name).values()}, f"undeclared label values {values}"
    assert len(values) > 1, "phantom-trained weights should find the structure, not only background"


def test_infer_on_a_truncated_image_names_the_file(server):
    """MONAI Label applies inference.json's preprocessing, whose first transform checks the file."""
    url, root, _ = server
    response = requests.post(f"{url}/infer/{TRAINED}", params={"image": "broken_000", "output": "image"}, timeout=600)
    assert not response.ok  # MONAI Label answers 500 and logs the exception: its last line names the file
    line = "broken_000.nii.gz is corrupt or truncated (EOFError"
    deadline = time.monotonic() + 30
    while line not in response.text + (root / "server.log").read_text() and time.monotonic() < deadline:
        time.sleep(1)  # the server's log is written through a buffer
    assert line in response.text + (root / "server.log").read_text()


def _local_inference(bundle: Path, image: Path, out: Path, **overrides) -> np.ndarray:
    """The bundle's own inference.json on ``image`` with ``bundle``'s current weights."""
    run_bundle(bundle, ["inference"], bundle_root=str(bundle), input_dir=str(image), output_dir=str(out),
               num_workers=0, **overrides)
    return np.asarray(nib.load(str(next(out.glob("*.nii.gz")))).dataobj)


@pytest.mark.parametrize("name", [n for n in BUNDLES if _averages_members(ROOT / "bundles" / n)])
def test_a_bundle_that_averages_its_members_is_served_averaged(server, name):
    """MONAI Label loads models/model.pt (member 0) into network_def, then calls the bundle's inferer with it."""
    url, root, images = server
    bundle = root / "apps" / "monaibundle" / "model" / name
    image = root / "studies" / f"{images[name]}.nii.gz"
    served = _infer(url, name, images[name], root / f"served_{name}.nii.gz")
    np.testing.assert_array_equal(served, _local_inference(bundle, image, root / f"pair_{name}"))
    alone = _local_inference(bundle, image, root / f"alone_{name}", ensemble=False)
    assert not np.array_equal(served, alone), "the same labels as member 0 alone"


def test_training_round_writes_weights_that_inference_then_uses(server):
    url, root, images = server
    bundle = root / "apps" / "monaibundle" / "model" / TRAINED
    weights = bundle / "models" / "model.pt"
    before_hash = hashlib.sha256(weights.read_bytes()).hexdigest()
    image = images[TRAINED]
    before = _infer(url, TRAINED, image, root / "before.nii.gz")

    params = {"max_epochs": 1, "val_split": 0.34, "device": "cpu", "multi_gpu": False, "pretrained": True}
    response = requests.post(f"{url}/train/{TRAINED}", json=params, timeout=60)
    assert response.ok, f"/train/{TRAINED}: {response.status_code} {response.text[:2000]}"
    deadline = time.monotonic() + 600
    while True:  # the task runs in a background process, as when started from 3D Slicer
        status = requests.get(f"{url}/train/", timeout=30).json()
        if status.get("status") in ("DONE", "ERROR", "STOPPED"):
            break
        assert time.monotonic() < deadline, f"training not finished after 600 s: {status}"
        time.sleep(3)
    assert status["status"] == "DONE", f"training ended {status['status']}; see {root / 'server.log'}"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() != before_hash, "models/model.pt was not rewritten"

    after = _infer(url, TRAINED, image, root / "after.nii.gz")
    expected = _local_inference(bundle, root / "studies" / f"{image}.nii.gz", root / "local")
    np.testing.assert_array_equal(after, expected)  # the server predicts with the new weights...
    assert not np.array_equal(before, after), "prediction unchanged after training"  # ...which differ from the old
