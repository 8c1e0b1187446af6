"""Every bundle trains, infers, evaluates, verifies and exports through monai.bundle on small phantoms."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import cli_runner
from freq_transforms.recipe import read_recipe, recorded_settings
from freq_transforms.lab.phantoms import write_phantom_dataset

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = {
    "red_nucleus_qsm_fd_segmentation": "red_nucleus",
    "dentate_nucleus_qsm_fd_segmentation": "dentate_nucleus",
    "spleen_ct_fd_segmentation": "spleen",
    "heart_mri_fd_segmentation": "heart",
    "hippocampus_mri_fd_segmentation": "hippocampus",
}
SCHEMA = ROOT / "tests" / "data" / "meta_schema_20240725.json"  # offline copy of the schema metadata.json names
SMALL = {"spatial_size": "[32,32,24]", "num_workers": "0", "cache_rate": "0", "backbone": "UNet",
         "backbone_kwargs": "{'channels': (8, 16, 32), 'strides': (2, 2), 'num_res_units': 1}"}
# patch mode on the phantoms: small patches, a short epoch, the training cases' median spacing (phantom spacings
# are coarse; each bundle's own target spacing is exercised by test_sampling.py)
SMALL_PATCH = {"patch_size": "[32,32,24]", "iterations_per_epoch": "2", "samples_per_volume": "2",
               "target_spacing": "median"}
PHANTOM_SHAPE = {"hippocampus": None}  # the others get a reduced grid


def _cli(bundle: Path, *args: str, **overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", *args]
    for key, value in overrides.items():
        cmd += [f"--{key}", str(value)]
    result = cli_runner.run(cmd, cwd=bundle, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def phantom_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    return {task: write_phantom_dataset(task, root / task, n=6, seed=1, progress=False,
                                        shape=PHANTOM_SHAPE.get(task, (40, 40, 32)))
            for task in BUNDLES.values()}


def test_bundles_match_their_source():
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "bundles", "build", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout  # the message names the command that regenerates them


def test_out_of_date_bundle_names_the_command(tmp_path):
    import shutil

    shutil.copytree(ROOT / "bundles" / "heart_mri_fd_segmentation", tmp_path / "bundles" / "heart_mri_fd_segmentation")
    (tmp_path / "bundles" / "heart_mri_fd_segmentation" / "configs" / "train.json").write_text("{}")
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "bundles", "build", "--check", "--source",
                             str(ROOT / "bundle_source"), "--out", str(tmp_path / "bundles")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stdout.startswith("out of date (run python -m freq_transforms bundles build):")
    assert "heart_mri_fd_segmentation/configs/train.json" in result.stdout


@pytest.mark.parametrize("lr_schedule", [None, "poly"])
def test_a_task_sets_the_learning_rate_schedule_of_its_train_config(lr_schedule):
    from freq_transforms.bundle.build import bundle_files, load_task

    name = "hippocampus_mri_fd_segmentation"
    task = load_task(ROOT / "bundle_source" / "tasks" / f"{name}.json")
    task.pop("lr_schedule", None)
    if lr_schedule:
        task["lr_schedule"] = lr_schedule
    files = bundle_files(ROOT / "bundle_source", name, task, ROOT / "bundle_source" / "tasks", "license")
    train = json.loads(files["configs/train.json"])
    readme_row = next(line for line in files["docs/README.md"].splitlines() if line.startswith("| `lr_schedule` |"))
    if lr_schedule:
        assert train["lr_schedule"] == "poly" and '| `"poly"` |' in readme_row
    else:
        assert train["lr_schedule"] is None and "null: `poly` in patch mode, `constant` in resize mode" in readme_row


def test_a_task_sets_the_sliding_window_overlap_of_its_configs_and_readme():
    from freq_transforms.bundle.build import bundle_files, load_task

    name = "heart_mri_fd_segmentation"
    task = {**load_task(ROOT / "bundle_source" / "tasks" / f"{name}.json"), "sw_overlap": 0.25}
    files = bundle_files(ROOT / "bundle_source", name, task, ROOT / "bundle_source" / "tasks", "license")
    for config in ("train", "inference"):  # evaluate and inference_onnx are layered on these two
        assert json.loads(files[f"configs/{config}.json"])["sw_overlap"] == 0.25
    readme = files["docs/README.md"]
    assert "`sw_overlap` 0.25, gaussian blending" in readme and "| `sw_overlap` | `0.25` |" in readme


@pytest.mark.slow
def test_a_sixth_task_is_one_task_file_and_trains(tmp_path):
    """How to add a task (README): one JSON file in bundle_source/tasks; here a toy prostate MRI bundle."""
    import shutil

    source = tmp_path / "bundle_source"
    shutil.copytree(ROOT / "bundle_source", source)
    shutil.copy(ROOT / "LICENSE", tmp_path / "LICENSE")
    for extra in (source / "tasks").iterdir():
        extra.unlink()
    task = json.loads((ROOT / "bundle_source" / "tasks" / "heart_mri_fd_segmentation.json").read_text())
    task.update({"version": "0.1.0", "changelog": {"0.1.0": "first version"}, "task": "prostate",
                 "title": "Prostate zones from MRI (toy)", "labels": ["background", "peripheral", "transition"],
                 "spatial_size": [32, 32, 24], "split_ratio": [6, 1, 1], "dataset_dir": "/workspace/data/prostate"})
    for about_weights in ("eval_metrics", "expected_results_file"):  # the template ships weights, the new task not
        task.pop(about_weights)
    (source / "tasks" / "prostate_mri_fd_segmentation.json").write_text(json.dumps(task))
    result = cli_runner.run([sys.executable, "-m", "freq_transforms", "bundles", "build", "--source", str(source),
                             "--out", str(tmp_path / "bundles")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    bundle = tmp_path / "bundles" / "prostate_mri_fd_segmentation"
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert meta["version"] == "0.1.0" and meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 3
    assert "# prostate_mri_fd_segmentation" in (bundle / "docs" / "README.md").read_text()
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=8, seed=1, progress=False)  # 3 classes
    root = tmp_path / "run"
    _cli(bundle, "run", "--config_file", "configs/train.json", dataset_dir=data, bundle_root=root, epochs=1,
         val_interval=1, **{k: v for k, v in SMALL.items() if k != "spatial_size"})
    assert (root / "models" / "model.pt").is_file()
    assert (root / "eval" / "validation_metrics.csv").read_text().startswith("epoch,iteration,seconds,val_dice_peripheral,")


@pytest.mark.parametrize("name", BUNDLES)
def test_bundle_layout_and_metadata(name, tmp_path):
    from monai.bundle import verify_metadata

    bundle = ROOT / "bundles" / name
    for rel in ("configs/metadata.json", "configs/train.json", "configs/inference.json", "configs/evaluate.json",
                "configs/multi_gpu_train.json", "configs/logging.conf", "docs/README.md",
                "docs/data_license.txt", "LICENSE"):
        assert (bundle / rel).is_file(), rel
    assert not (bundle / "scripts").exists()
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert "freq_transforms" in meta["required_packages_version"]
    assert meta["version"] in meta["changelog"]
    channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert len(channel_def) == meta["network_data_format"]["outputs"]["pred"]["num_channels"]
    schema = tmp_path / "schema.json"
    schema.write_bytes(SCHEMA.read_bytes())  # verify_metadata skips the download when the file exists
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), filepath=str(schema))
    train = json.loads((bundle / "configs" / "train.json").read_text())
    for key in ("dataset_dir", "fusion", "cutoff", "backbone", "n_train", "seed", "epochs", "val_interval",
                "device", "amp", "num_workers", "cache_rate", "training", "run", "network"):
        assert key in train, key




@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_agrees_with_itself_the_configs_and_the_zoo(name, zoo):
    """Every field says the same as the others and as train.json: the network outputs unbounded logits (no
    value range), the input is scaled to [0, 1], channels and sizes match the configs; the zoo spleen bundle's
    top-level fields are all present."""
    bundle = ROOT / "bundles" / name
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    train = json.loads((bundle / "configs" / "train.json").read_text())
    image = meta["network_data_format"]["inputs"]["image"]
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert "logits" in meta["pred_classes"] and pred["format"] == "logits" and pred["value_range"] == []
    assert image["value_range"] == [0, 1] and "scaled to [0, 1]" in meta["image_classes"]
    assert pred["num_channels"] == train["num_classes"] == len(train["class_names"]) == len(pred["channel_def"])
    assert list(pred["channel_def"].values()) == train["class_names"]
    assert image["num_channels"] == train["in_channels"]
    grid = train["patch_size"] if train["sampling"] == "patch" else train["spatial_size"]
    assert image["spatial_shape"] == pred["spatial_shape"] == grid
    assert image["is_patch_data"] == (train["sampling"] == "patch")
    assert meta["label_classes"].count(" is ") == train["num_classes"]
    for i, class_name in enumerate(train["class_names"]):
        assert f"channel {i} is {class_name}" in meta["pred_classes"]
    spleen = json.loads((zoo / "spleen_ct_segmentation" / "configs" / "metadata.json").read_text())
    expected = set(spleen) - {"optional_packages_version"}  # ours are required: the configs import them
    assert expected <= set(meta), sorted(expected - set(meta))


def test_metadata_with_missing_field_fails_verification(tmp_path):
    from monai.bundle import verify_metadata

    meta = json.loads((ROOT / "bundles" / "heart_mri_fd_segmentation" / "configs" / "metadata.json").read_text())
    del meta["network_data_format"]
    bad = tmp_path / "metadata.json"
    bad.write_text(json.dumps(meta))
    schema = tmp_path / "schema.json"
    schema.write_bytes(SCHEMA.read_bytes())
    with pytest.raises(Exception, match="network_data_format"):
        verify_metadata(meta_file=str(bad), filepath=str(schema))


@pytest.mark.parametrize("name", BUNDLES)
def test_each_mode_uses_its_inferer(name):
    """What MONAI Label and evaluation run: the averaging inferer (the bundle's tta and ensemble; validation during
    training never averages fold models) around a gaussian sliding window over patch_size in patch mode, one pass
    of the network in resize mode."""
    from monai.bundle import ConfigParser
    from monai.inferers import SimpleInferer, SlidingWindowInferer

    from freq_transforms.networks import AveragingInferer

    for config, key in (("inference", "inferer"), ("train", "validate#inferer")):
        for sampling, window_type in (("patch", SlidingWindowInferer), ("resize", SimpleInferer)):
            parser = ConfigParser()
            parser.read_config(str(ROOT / "bundles" / name / "configs" / f"{config}.json"))
            parser["sampling"] = sampling
            inferer = parser.get_parsed_content(key)
            assert isinstance(inferer, AveragingInferer) and isinstance(inferer.inferer, window_type)
            assert inferer.tta == parser["tta"]
            assert inferer.ensemble == (parser["ensemble"] if config == "inference" else False)
            if sampling == "patch":
                window = inferer.inferer
                assert list(window.roi_size) == parser["patch_size"]
                assert window.mode == "gaussian" and window.overlap == parser["sw_overlap"]


@pytest.mark.parametrize("name", BUNDLES)
@pytest.mark.parametrize("workflow_type,configs", [("train", ["train"]), ("infer", ["inference"])])
def test_config_workflow_properties(name, workflow_type, configs, phantom_sets, tmp_path):
    from monai.bundle import ConfigWorkflow

    bundle = ROOT / "bundles" / name
    spacing = json.loads((bundle / "configs" / "inference.json").read_text())["target_spacing"]
    # inference takes a "median" target spacing from the trained weights' record, and there are none here
    known = {"target_spacing": [1.0, 1.0, 1.0]} if workflow_type == "infer" and spacing == "median" else {}
    workflow = ConfigWorkflow(config_file=[str(bundle / "configs" / f"{c}.json") for c in configs],
                              meta_file=str(bundle / "configs" / "metadata.json"),
                              logging_file=str(bundle / "configs" / "logging.conf"), workflow_type=workflow_type,
                              init_id="no_initialize",  # properties only: no checkpoint to load here
                              dataset_dir=str(phantom_sets[BUNDLES[name]]), bundle_root=str(tmp_path),
                              input_dir=str(phantom_sets[BUNDLES[name]] / "imagesTr"), cache_rate=0, **known)
    workflow.initialize()
    assert workflow.check_properties() == []


SHIPPED = ("heart_mri_fd_segmentation", "hippocampus_mri_fd_segmentation")  # the bundles with weights: fast suite


@pytest.mark.parametrize("sampling", ["resize", "patch"])
@pytest.mark.parametrize("name", [n if n in SHIPPED else pytest.param(n, marks=pytest.mark.slow) for n in BUNDLES])
def test_train_infer_evaluate_export(name, sampling, phantom_sets, tmp_path):
    bundle = ROOT / "bundles" / name
    data = phantom_sets[BUNDLES[name]]
    root = tmp_path / "run"
    common = {"dataset_dir": data, "bundle_root": root, "sampling": sampling, **SMALL,
              **(SMALL_PATCH if sampling == "patch" else {})}
    run_id = ["run", "training"][name.startswith("hippo")]  # both spellings users type
    augment = {"augment": "True"} if name.startswith("spleen") else {}  # the augmentation override works
    _cli(bundle, "run", run_id, "--config_file", "configs/train.json", epochs=2, val_interval=1, **augment, **common)
    assert (root / "models" / "model.pt").is_file()
    split = json.loads((root / "eval" / "split.json").read_text())
    assert split["counts"]["test"] >= 1 and split["counts"]["val"] >= 1
    labels = json.loads((bundle / "configs" / "metadata.json").read_text())["network_data_format"]["outputs"]["pred"]
    per_class = [f"val_dice_{n.replace(' ', '_')}" for i, n in sorted(labels["channel_def"].items()) if i != "0"]
    rows = (root / "eval" / "validation_metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == ["epoch", "iteration", "seconds", *per_class, "val_mean_dice"] and len(rows) == 3
    iterations = [int(row.split(",")[1]) for row in rows[1:]]  # one row per validation, budget in iterations
    assert iterations == ([2, 4] if sampling == "patch" else iterations) and iterations[0] > 0
    record = recorded_settings(torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True))
    assert record["sampling"] == sampling
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert record["bundle"] == {"name": meta["name"], "version": meta["version"]}  # the whole recipe, written once
    assert record["class_names"] == [labels["channel_def"][k] for k in sorted(labels["channel_def"])]
    assert record["intensity"] and "ct_window" in record and record["fusion"] and record["backbone"]
    if sampling == "patch":  # the median spacing of the training cases, in RAS order, recorded for inference
        from freq_transforms.sampling import median_spacing
        assert record["target_spacing"] == pytest.approx(median_spacing(split["train"]))

    _cli(bundle, "run", "evaluating", "--config_file", "['configs/train.json','configs/evaluate.json']",
         save_predictions="True", **common)
    assert json.loads((root / "eval" / "split.json").read_text()) == split  # evaluation keeps the training record
    assert json.loads((root / "eval" / "evaluate_split.json").read_text())["test"] == split["test"]
    raw = (root / "eval" / "test_mean_dice_raw.csv").read_text().splitlines()
    assert len(raw) == 1 + split["counts"]["test"]
    assert (root / "eval" / "test_hd95_raw.csv").is_file()
    assert not (root / "eval" / ".metrics_staging").exists()
    if name.startswith("hippo"):  # an external MSD-layout test set instead of the test split
        external = write_phantom_dataset("hippocampus", tmp_path / "external", n=3, seed=11, progress=False)
        _cli(bundle, "run", "--config_file", "['configs/train.json','configs/evaluate.json']",
             test_dataset_dir=external, **common)
        rows = (root / "eval" / "test_mean_dice_raw.csv").read_text().splitlines()[1:]
        assert len(rows) == 3 and all(str(external) in row for row in rows)

    test_image = Path(split["test"][0]["image"])
    out = tmp_path / "pred"
    _cli(bundle, "run", "--config_file", "configs/inference.json", input_dir=test_image, output_dir=out, **common)
    pred = nib.load(str(out / test_image.name.replace(".nii.gz", "_seg.nii.gz")))
    source = nib.load(str(test_image))
    assert pred.shape == source.shape
    np.testing.assert_allclose(pred.affine, source.affine, atol=1e-4)
    n_classes = json.loads((bundle / "configs" / "metadata.json").read_text())[
        "network_data_format"]["outputs"]["pred"]["num_channels"]
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= set(range(n_classes))

    ts = tmp_path / "model.ts"
    _cli(bundle, "ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(root / "models" / "model.pt"),
         "--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json",
         backbone=SMALL["backbone"], backbone_kwargs=SMALL["backbone_kwargs"])
    scripted = torch.jit.load(str(ts), map_location="cpu")
    assert scripted(torch.rand(1, 1, 32, 32, 24)).shape == (1, n_classes, 32, 32, 24)
    assert read_recipe(ts) == record  # the recipe survives monai.bundle ckpt_export


@pytest.mark.parametrize("name", BUNDLES)
@pytest.mark.parametrize("fusion,arch", [("none", "v2"), ("early", "v2"), ("late", "v2"), ("early", "paper"),
                                         ("late", "paper")])
def test_verify_net_in_out_every_fusion(name, fusion, arch):
    from monai.bundle import verify_net_in_out

    bundle = ROOT / "bundles" / name
    verify_net_in_out(net_id="network_def", meta_file=str(bundle / "configs" / "metadata.json"),
                      config_file=str(bundle / "configs" / "inference.json"), device="cpu", fusion=fusion, arch=arch,
                      backbone="UNet", backbone_kwargs={"channels": (8, 16, 32), "strides": (2, 2), "num_res_units": 0})


@pytest.mark.parametrize("name", BUNDLES)
@pytest.mark.parametrize("fusion,arch", [("none", "v2"), ("early", "v2"), ("late", "v2"), ("early", "paper")])
def test_ckpt_export_other_fusions(name, fusion, arch, tmp_path):
    from monai.bundle import ConfigParser

    bundle = ROOT / "bundles" / name
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    # the UNet in every bundle: MONAI's DynUNet with deep supervision (the hippocampus default) cannot be scripted
    parser["fusion"], parser["arch"], parser["backbone"], parser["backbone_kwargs"] = fusion, arch, "UNet", {}
    net = parser.get_parsed_content("network_def")
    torch.save(net.state_dict(), tmp_path / "model.pt")
    ts = tmp_path / "model.ts"
    _cli(bundle, "ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(tmp_path / "model.pt"),
         "--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json", fusion=fusion, arch=arch,
         backbone="UNet", backbone_kwargs="{}")
    x = torch.rand(1, 1, 32, 32, 32)
    torch.testing.assert_close(torch.jit.load(str(ts))(x), net.eval()(x), atol=1e-4, rtol=1e-4)


def test_inference_with_a_checkpoint_of_another_layout_names_the_override(tmp_path):
    """Asking for the other layout than the shipped weights' stops with one line, no traceback hunt."""
    bundle = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
    state = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    trained = recorded_settings(state)["arch"]
    other = {"v2": "paper", "paper": "v2"}[trained]
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=3, seed=5, progress=False)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
           "--input_dir", str(data / "imagesTr"), "--output_dir", str(tmp_path / "out"), "--arch", other]
    result = cli_runner.run(cmd, cwd=bundle, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    line = (f"checkpoint models/model.pt does not fit the configured network: it was trained with arch='{trained}', "
            f"the config says arch='{other}': pass --arch {trained}")
    assert result.stderr.strip().splitlines()[-1] == f"error: {line}"
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_hippocampus_bundle_learns_on_phantoms(tmp_path):
    """Long enough to learn: validation Dice on phantoms must clear a floor well above chance."""
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=14, seed=3, progress=False)
    bundle = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
    root = tmp_path / "run"
    _cli(bundle, "run", "--config_file", "configs/train.json", dataset_dir=data, bundle_root=root, epochs=12,
         val_interval=4, fusion="late", spatial_size="[48,48,32]", num_workers=0)
    _cli(bundle, "run", "--config_file", "['configs/train.json','configs/evaluate.json']", dataset_dir=data,
         bundle_root=root, fusion="late", spatial_size="[48,48,32]", num_workers=0)
    mean_dice = float((root / "eval" / "metrics.csv").read_text().splitlines()[0].split(",")[1])
    # validation Dice 0.17 after 2 epochs, 0.71 after 10
    assert mean_dice > 0.6, f"test Dice {mean_dice:.3f} after 12 epochs"


@pytest.mark.slow
@pytest.mark.parametrize("cases,val_cases,sampling", [(6, 1, "resize"),  # 1 val case < 2 ranks
                                                      (12, 2, "patch")])  # one val case per rank
def test_torchrun_two_process_cpu(tmp_path, cases, val_cases, sampling):
    bundle = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
    data = write_phantom_dataset("hippocampus", tmp_path / "data", n=cases, seed=2, progress=False)
    root = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
           "run", "--config_file", "['configs/train.json','configs/multi_gpu_train.json']",
           "--dataset_dir", str(data), "--bundle_root", str(root), "--epochs", "2",
           "--val_interval", "1", "--sampling", sampling] + [arg for k, v in SMALL.items() for arg in (f"--{k}", v)]
    if sampling == "patch":
        cmd += [arg for k, v in SMALL_PATCH.items() for arg in (f"--{k}", v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=bundle, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (root / "models" / "model.pt").is_file()
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert not any(k.startswith("module.") for k in state)  # saved unwrapped, loadable by inference.json
    assert json.loads((root / "eval" / "split.json").read_text())["counts"]["val"] == val_cases
    rows = (root / "eval" / "validation_metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # both epochs validated, on rank 0's record

    # the best validation Dice of the distributed run is the single-process Dice of its model.pt on the same cases:
    # no validation case dropped or counted twice
    best = max(float(row.split(",")[-1]) for row in rows[1:])
    _cli(bundle, "run", "--config_file", "['configs/train.json','configs/evaluate.json']", dataset_dir=data,
         bundle_root=root, sampling=sampling, **{"validate#dataset#data": "$@split['val']"}, **SMALL,
         **(SMALL_PATCH if sampling == "patch" else {}))
    single = float((root / "eval" / "metrics.csv").read_text().splitlines()[0].split(",")[1])
    assert single == pytest.approx(best, abs=1e-5)


@pytest.mark.parametrize("name", ["hippocampus_mri_fd_segmentation", "heart_mri_fd_segmentation"])
def test_shipped_weights_load_into_the_default_network(name):
    """Bundles with real-data weights: they fit inference.json's defaults (layers, and the grid they were trained
    on: sampling with its spatial size, or patch size and target spacing) and metadata reports their metrics."""
    from monai.bundle import ConfigParser

    bundle = ROOT / "bundles" / name
    weights = bundle / "models" / "model.pt"
    assert weights.is_file() and weights.stat().st_size < 10 * 2**20  # "small: a few MB"
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    net = parser.get_parsed_content("network_def")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    record, sampling = recorded_settings(state), parser.get_parsed_content("sampling")
    assert record.get("sampling", "resize") == sampling
    if sampling == "patch":
        size = parser.get_parsed_content("patch_size")
        assert record["patch_size"] == list(size)
        assert record["target_spacing"] == parser.get_parsed_content("target_spacing_mm")
    else:
        size = parser.get_parsed_content("spatial_size")
        assert record["spatial_size"] == list(size)
    with torch.no_grad():
        out = net.eval()(torch.rand(1, 1, *size))
    assert out.shape == (1, parser.get_parsed_content("num_classes"), *size)
    metrics = json.loads((bundle / "configs" / "metadata.json").read_text())["eval_metrics"]
    assert 0 < metrics["test_mean_dice"] <= 1 and metrics["test_cases"] > 0
    # the zoo's way: how many cases the shipped model trained on, how the score was obtained, on which grid
    assert metrics["train_cases"] > 0 and len(metrics["test_protocol"]) > 40
    assert metrics["sampling"] == record.get("sampling", "resize")
    # what inference runs by default is what was scored: mirroring, the fold ensemble (with its members shipped)
    # and the backbone's deep supervision
    assert metrics["tta"] == parser.get_parsed_content("tta")
    assert metrics["ensemble"] == parser.get_parsed_content("ensemble")
    members = sorted((bundle / "models").glob("fold*/model.pt"))
    assert len(members) == metrics["folds_in_ensemble"]
    for member in members:  # each member is the configured network too, and they differ
        net.load_state_dict(torch.load(member, map_location="cpu", weights_only=True), strict=True)
    assert len({member.read_bytes() for member in members}) == len(members)
    # deep supervision is how the weights were trained; inference builds the network without its heads
    assert metrics["deep_supervision"] == bool((record.get("backbone_kwargs") or {}).get("deep_supervision"))
    assert "deep_supervision" not in parser.get_parsed_content("backbone_kwargs")
    assert metrics["train_seconds_cpu"] > 0 and metrics["infer_seconds_per_case_onnxruntime"] > 0


def test_a_model_option_is_one_config_away_with_its_own_weights_and_metrics():
    """The heart bundle's ``accurate`` option: ``configs/accurate.json`` listed after inference.json builds its network
    (DynUNet), loads its weights from ``models/accurate/`` (strictly, each member), averages them as metadata says,
    and is slower and more accurate on validation than the default in ``eval_metrics``."""
    from monai.bundle import ConfigParser

    bundle = ROOT / "bundles" / "heart_mri_fd_segmentation"
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / f) for f in ("inference.json", "accurate.json")])
    parser.update({"bundle_root": str(bundle)})
    assert parser.get_parsed_content("ckpt_dir") == str(bundle / "models" / "accurate")
    net = parser.get_parsed_content("network_def")
    assert type(net.backbone).__name__ == "DynUNet"
    members = sorted((bundle / "models" / "accurate").glob("fold*/model.pt"))
    for weights in [bundle / "models" / "accurate" / "model.pt", *members]:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    metrics = json.loads((bundle / "configs" / "metadata.json").read_text())["eval_metrics"]
    accurate = metrics["options"]["accurate"]
    assert metrics["point"].startswith("default") and accurate["point"].startswith("accurate")
    assert accurate["ensemble"] == parser.get_parsed_content("ensemble") and accurate["folds_in_ensemble"] == 2
    assert len(members) == 2 and len({m.read_bytes() for m in members}) == 2
    assert metrics["infer_seconds_per_case_torch"] <= 20 < accurate["infer_seconds_per_case_torch"]  # the budget
    assert accurate["val_mean_dice"] > metrics["val_mean_dice"]  # the same protocol: n = 4, 4 folds


def test_an_option_of_inference_settings_alone_runs_the_default_weights_faster():
    """The heart bundle's ``fast`` option (``configs/fast.json``: member 0 alone) reads the default's ``models/`` (the
    build writes no ``ckpt_dir`` for an option that changes no weight setting), loads ``models/model.pt`` alone, and
    is faster and less accurate than the default pair in ``eval_metrics``: a point of the front below it."""
    from monai.bundle import ConfigParser

    bundle = ROOT / "bundles" / "heart_mri_fd_segmentation"
    assert "ckpt_dir" not in json.loads((bundle / "configs" / "fast.json").read_text())
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / f) for f in ("inference.json", "fast.json")])
    parser.update({"bundle_root": str(bundle)})
    assert parser.get_parsed_content("ckpt_dir") == str(bundle / "models")
    assert parser.get_parsed_content("ensemble") is False
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True), strict=True)
    metrics = json.loads((bundle / "configs" / "metadata.json").read_text())["eval_metrics"]
    fast = metrics["options"]["fast"]
    assert fast["ensemble"] is False and fast["folds_in_ensemble"] == 0 and fast["point"].startswith("fast")
    assert fast["infer_seconds_per_case_torch"] < metrics["infer_seconds_per_case_torch"] <= 20
    assert fast["val_mean_dice"] < metrics["val_mean_dice"] < metrics["options"]["accurate"]["val_mean_dice"]


@pytest.mark.parametrize("name", SHIPPED)
def test_the_readme_opens_with_the_front_of_the_weights_it_ships(name):
    """Before the grid section, one row per point of ``eval_metrics`` (the default, then each option): its Dice and
    seconds as the weights' record says, and the configs that run it, each of which exists."""
    bundle = ROOT / "bundles" / name
    metrics = json.loads((bundle / "configs" / "metadata.json").read_text())["eval_metrics"]
    readme = (bundle / "docs" / "README.md").read_text()
    front = readme[readme.index("## Models: Dice against seconds per case"):readme.index("## Grid")]
    rows = [line for line in front.splitlines() if line.startswith("| **")]
    points = [("default", metrics), *metrics["options"].items()]
    assert [row.split("**")[1] for row in rows] == [point for point, _ in points]
    for row, (option, record) in zip(rows, points):
        assert f"| {100 * record['val_mean_dice']:.2f}" in row
        assert f"| {record['infer_seconds_per_case_torch']:g} / {record['infer_seconds_per_case_onnxruntime']:g} |" in row
        configs = ["inference.json"] + ([] if option == "default" else [f"{option}.json"])
        assert all((bundle / "configs" / c).is_file() and f"configs/{c}" in row for c in configs)


def test_a_task_option_naming_no_setting_stops_the_build_in_one_line(tmp_path):
    import shutil

    from freq_transforms.bundle.build import build_bundles

    source = tmp_path / "bundle_source"
    shutil.copytree(ROOT / "bundle_source", source)
    task = source / "tasks" / "heart_mri_fd_segmentation.json"
    content = json.loads(task.read_text())
    content["options"]["accurate"]["backbone_kwarg"] = {}
    task.write_text(json.dumps(content))
    with pytest.raises(ValueError, match="^task option 'accurate': 'backbone_kwarg' is no bundle setting$"):
        build_bundles(source, tmp_path / "out", license_file=ROOT / "LICENSE")


@pytest.mark.parametrize("augment, axes, flipped", [(True, [0, 2], [0, 2]), (True, [], []), (False, [0, 1, 2], [])])
def test_flip_axes_adds_a_random_flip_per_axis_to_the_augmentation(augment, axes, flipped, tmp_path):
    import torch
    from monai.bundle import ConfigParser

    from freq_transforms.transforms import RandFlipAxesd

    bundle = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(tmp_path), "augment": augment, "flip_axes": axes})
    chosen = parser.get_parsed_content("train#random_transforms")
    flips = [t for t in chosen if isinstance(t, RandFlipAxesd)]
    assert len(flips) == int(augment) and bool(augment) == (len(chosen) > 1)  # the flips come with augment only
    if flips:  # with prob 1 each listed axis is flipped, and only those
        flips[0].prob = 1.0
        image = torch.arange(24.0).reshape(1, 2, 3, 4)
        out = flips[0]({"image": image, "label": image})["image"]
        assert torch.equal(out.as_tensor() if hasattr(out, "as_tensor") else out, image.flip([a + 1 for a in flipped]))
