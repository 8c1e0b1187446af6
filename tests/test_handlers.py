"""Validation schedule and model saving: every training run ends with a models/model.pt."""

from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from freq_transforms.handlers import BestModelSaver, PeriodicValidation, SaveIfNeverValidated, leave_process_group
from freq_transforms.lab.phantoms import write_phantom_dataset

ROOT = Path(__file__).resolve().parents[1]
HIPPO = ROOT / "bundles" / "hippocampus_mri_fd_segmentation"


def _trainer(max_epochs: int, handlers) -> Engine:
    trainer = Engine(lambda engine, batch: None)
    for handler in handlers:
        handler.attach(trainer)
    trainer.run([0, 1], max_epochs=max_epochs)
    return trainer


class _Validator:
    def __init__(self, n_items: int) -> None:
        self.data_loader = list(range(n_items))
        self.epochs = []

    def run(self, epoch: int) -> None:
        self.epochs.append(epoch)


@pytest.mark.parametrize("max_epochs,expected", [(12, [5, 10, 12]), (10, [5, 10]), (1, [1])])
def test_validation_every_interval_and_after_the_last_epoch(max_epochs, expected):
    handler = PeriodicValidation(interval=5)
    handler.validator = _Validator(2)
    _trainer(max_epochs, [handler])
    assert handler.validator.epochs == expected


def test_empty_validation_set_is_skipped_and_final_weights_saved(tmp_path):
    handler = PeriodicValidation(interval=1)
    handler.validator = _Validator(0)
    net = torch.nn.Linear(2, 1)
    saver = BestModelSaver(str(tmp_path), net)
    _trainer(2, [handler, SaveIfNeverValidated(saver)])
    assert handler.validator.epochs == []
    state = torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=True)
    torch.testing.assert_close(state["weight"], net.weight)


def _evaluator(dice: float) -> Engine:
    evaluator = Engine(lambda engine, batch: None)
    evaluator.state.metrics, evaluator.state.key_metric_name, evaluator.state.epoch = {"dice": dice}, "dice", 1
    return evaluator


def test_validated_run_keeps_its_best_model(tmp_path):
    net = torch.nn.Linear(2, 1)
    saver = BestModelSaver(str(tmp_path), net)
    saver(_evaluator(0.5))
    best = (tmp_path / "model.pt").read_bytes()
    with torch.no_grad():
        net.weight.add_(1.0)
    saver(_evaluator(0.4))  # worse: kept
    _trainer(1, [SaveIfNeverValidated(saver)])
    assert (tmp_path / "model.pt").read_bytes() == best
    saver(_evaluator(0.6))  # better: replaced, and the score survives a resume through state_dict
    assert (tmp_path / "model.pt").read_bytes() != best
    resumed = BestModelSaver(str(tmp_path), net)
    resumed.load_state_dict(saver.state_dict())
    assert resumed.best == pytest.approx(0.6)


@pytest.mark.parametrize("val_items", [0, 1])
def test_bundle_trains_with_monailabel_style_overrides(val_items, tmp_path):
    """MONAI Label overrides the data lists and max_epochs (1) and skips nothing else: model.pt must appear."""
    from freq_transforms.data import load_msd_datalist
    from freq_transforms.lab.runner import run_bundle

    data = load_msd_datalist(write_phantom_dataset("hippocampus", tmp_path / "data", n=3, seed=2, progress=False))
    # no dataset_dir: MONAI Label gives the data lists only, and the bundle's default dataset_dir does not exist
    run_bundle(HIPPO, ["train"], bundle_root=str(tmp_path / "bundle"), num_workers=0, cache_rate=0, spatial_size=[32, 32, 24],
               backbone="UNet", backbone_kwargs={"channels": (8, 16, 32), "strides": (2, 2), "num_res_units": 1},
               **{"train#trainer#max_epochs": 1, "train#dataset#data": data[:2],
                  "validate#dataset#data": data[2:2 + val_items]})
    assert (tmp_path / "bundle" / "models" / "model.pt").is_file()


def test_leave_process_group_destroys_the_group_and_is_a_no_op_without_one(tmp_path):
    import torch.distributed as dist

    leave_process_group()  # nothing initialised: no error
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    leave_process_group()
    assert not dist.is_initialized()


def test_per_class_dice_and_validation_csv_warn_when_a_class_is_never_predicted(tmp_path, caplog):
    import logging

    from ignite.engine import Engine

    from freq_transforms.handlers import ValidationMetricsCSV, class_dice_metrics

    label = torch.zeros(1, 3, 4, 4, 4)
    label[:, 0] = 1
    label[:, 0, :2], label[:, 1, :2] = 0, 1  # class 1 in the first half
    label[:, 0, 3], label[:, 2, 3] = 0, 1    # class 2 in the last slab
    pred = label.clone()
    pred[:, 2], pred[:, 0, 3] = 0, 1          # class 2 never predicted

    evaluator = Engine(lambda engine, batch: {"pred": [pred[0]], "label": [label[0]]})
    metrics = class_dice_metrics(["background", "anterior", "posterior"])
    assert sorted(metrics) == ["val_dice_anterior", "val_dice_posterior"]
    for name, metric in metrics.items():
        metric.attach(evaluator, name)
    csv = ValidationMetricsCSV(str(tmp_path / "validation_metrics.csv"))
    csv.attach(evaluator)
    with caplog.at_level(logging.WARNING):
        evaluator.run([0], max_epochs=1)
    assert evaluator.state.metrics["val_dice_anterior"] == pytest.approx(1.0)
    assert evaluator.state.metrics["val_dice_posterior"] == 0.0
    assert "val_dice_posterior is 0 at epoch 1" in caplog.text
    rows = (tmp_path / "validation_metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,val_dice_anterior,val_dice_posterior" and rows[1].startswith("1,1.0,0.0")
    resumed = ValidationMetricsCSV(str(tmp_path / "validation_metrics.csv"))
    resumed.load_state_dict(csv.state_dict())  # a resumed run keeps the rows written before the kill
    assert resumed.rows == csv.rows


def test_fresh_training_sets_earlier_weights_aside_and_resume_keeps_them(tmp_path, caplog):
    import logging

    from freq_transforms.handlers import set_aside_previous_weights

    models = tmp_path / "models"
    models.mkdir()
    (models / "model.pt").write_bytes(b"shipped")
    (models / "model.ts").write_bytes(b"exported")
    (models / "resume.pt").write_bytes(b"mid-run")
    assert set_aside_previous_weights(str(models), resume=True) is None  # resuming: model.pt is this run's
    assert (models / "model.pt").read_bytes() == b"shipped"
    (models / "resume.pt").unlink()
    with caplog.at_level(logging.WARNING):
        moved = set_aside_previous_weights(str(models), resume=True)
    assert moved is not None and moved.parent == models / "previous"
    assert (moved / "model.pt").read_bytes() == b"shipped" and (moved / "model.ts").read_bytes() == b"exported"
    assert (models / "model.pt").read_bytes() == b"shipped"  # still there: MONAI Label fine-tunes from it
    assert not (models / "model.ts").exists()  # no stale export left beside the new weights
    assert f"the previous model.pt copied and model.ts moved to {moved}" in caplog.text


def test_fresh_training_sets_a_shipped_ensemble_and_its_exports_aside_but_a_member_only_itself(tmp_path):
    from freq_transforms.handlers import set_aside_previous_weights

    models = tmp_path / "models"
    for member in ("fold0", "fold1"):
        (models / member).mkdir(parents=True)
        (models / member / "model.pt").write_bytes(member.encode())
    (models / "model.pt").write_bytes(b"shipped")
    (models / "model.onnx").write_bytes(b"exported")
    assert set_aside_previous_weights(str(models / "fold1"), resume=False).parent == models / "fold1" / "previous"
    assert (models / "fold0" / "model.pt").read_bytes() == b"fold0"  # training member 1 leaves member 0 alone
    moved = set_aside_previous_weights(str(models), resume=False)  # one model trained where the ensemble was
    assert sorted(p.name for p in moved.iterdir()) == ["fold0", "fold1", "model.onnx", "model.pt"]
    assert (moved / "fold1" / "model.pt").read_bytes() == b"fold1"
    assert sorted(p.name for p in models.iterdir()) == ["model.pt", "previous"]  # --ensemble true: nothing stale


def test_checkpoint_records_its_settings_and_a_mismatch_names_the_overrides(tmp_path, caplog):
    import logging

    from freq_transforms import FrequencyDisentangledNet
    from freq_transforms.networks.checkpoint import load_weights
    from freq_transforms.recipe import recorded_settings, weights_with_record

    small = {"channels": [8, 16], "strides": [2], "num_res_units": 0}

    def net(**kw):
        return FrequencyDisentangledNet("UNet", 1, 3, backbone_kwargs=small, **{"fusion": "late", "arch": "v2", **kw})

    path = tmp_path / "model.pt"
    torch.save(weights_with_record(net(cutoff=0.2), spatial_size=[32, 32, 24], freq_transforms_version="9.9"), path)
    state = torch.load(path, weights_only=True)
    assert recorded_settings(state)["cutoff"] == 0.2 and recorded_settings(state)["freq_transforms_version"] == "9.9"
    net(cutoff=0.2).load_state_dict(state)  # still a plain state dict for MONAI Label and load_state_dict

    with pytest.raises(ValueError) as err:  # same parameter shapes: only the record can tell
        load_weights(net(cutoff=0.1, fusion="late", centered=False), path)
    assert str(err.value) == (f"checkpoint {path} does not fit the configured network: it was trained with cutoff=0.2, "
                              "centered=True, the config says cutoff=0.1, centered=False: pass --cutoff 0.2 --centered True")
    with pytest.raises(ValueError, match="pass --fusion late$"):
        load_weights(net(cutoff=0.2, fusion="early"), path)
    with caplog.at_level(logging.WARNING):
        record = load_weights(net(cutoff=0.2), path, recipe={"spatial_size": [64, 64, 48]})
    assert record["spatial_size"] == [32, 32, 24]
    assert "trained at spatial_size [32, 32, 24], the config says [64, 64, 48]" in caplog.text


def test_distributed_device_follows_local_rank_not_global_rank(monkeypatch):
    from freq_transforms.handlers import distributed_device

    monkeypatch.setenv("RANK", "5")  # second node of 4 GPUs each: global rank 5 is GPU 1 there
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert distributed_device() == torch.device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed_device() == torch.device("cpu")
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert distributed_device() == torch.device("cuda:0")
