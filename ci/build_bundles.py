"""Write the five FD bundles' configs from one table, so they stay consistent.

    python ci/build_bundles.py          # rewrite bundles/*/configs, docs, LICENSE
    python ci/build_bundles.py --check  # exit 1 if a committed file differs (run by the tests)

Bundles are plain zoo-style folders; this script only saves hand-editing five copies of
the same JSON. Task-specific values live in TASKS below; logic lives in freq_transforms.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

from freq_transforms.runner import logging_conf

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "bundles"
VERSION = "0.3.0"
CHANGELOG = {
    "0.3.0": "FD v2 (arch=v2, default except where shipped weights are of the paper layout): early fusion feeds low "
             "and high into the backbone's own input convs, late fusion adds zero-initialised low-frequency logit "
             "corrections, both starting as the plain backbone at its cost; arch=paper keeps the released code's "
             "layers; a checkpoint of another arch/fusion/fuse stops with the override to pass; K-fold "
             "cross-validation (folds, fold) and splits that keep identical images together",
    "0.2.1": "multi-GPU training: ranks meet at a barrier before the process group is destroyed "
             "(freq_transforms.handlers.leave_process_group)",
    "0.2.0": "validation also after the last epoch and final weights saved when no validation ran (MONAI Label "
             "training with max_epochs 1 or val_split 0 writes models/model.pt); branch convs run as one grouped "
             "conv (state_dict keys branches.conv_low/conv_high); HD95 in mm from each image's spacing (was voxels)",
    "0.1.0": "first release: FD (none/early/late) training, inference and evaluation",
}
PAPER = ("Fu, G., Chougar, L., Dormont, D., Lehericy, S., Colliot, O. (2023). Frequency Disentangled Learning "
         "for Segmentation of Midbrain Structures from Quantitative Susceptibility Mapping Data. "
         "MICCAI Workshop on Machine Learning in Medical Imaging. arXiv:2302.12980")
MSD = ("Antonelli, M., Reinke, A., Bakas, S., et al. (2022). The Medical Segmentation Decathlon. "
       "Nature Communications 13, 4128.")

HIPPOCAMPUS_RESULTS = """`models/model.pt` (4.8 MB) is trained on real data: early fusion in the paper's layer layout
(`fusion=early`, `arch=paper`: this bundle's defaults, so that they fit the shipped weights; an FD v2 model
on the full train part is the next step, see the repository's `docs/results.md`),
all 132 cases of the train part of MSD Task04 (`split_seed` 0), 20 epochs, everything else at the defaults
above, best validation Dice 83.75 (34 cases). On the 42 held-out test cases, original grid:

| model | mean Dice (%) [95% CI] | HD95 (mm) [95% CI] |
|---|---|---|
| this checkpoint (early fusion, paper layout) | 84.39 [83.28, 85.46] | 1.71 [1.52, 1.93] |
| the same recipe with `fusion=none` (plain UNet, not shipped) | 84.13 [83.04, 85.16] | 1.68 [1.48, 1.91] |

Early minus none: +0.27 [-0.14, 0.68] Dice points (paired bootstrap): no detectable difference. The paper
reports 85.89 (early) and 85.82 (none) with 166 training cases and about 300 epochs; nnU-Net reports about
89-90. Command (from the repository root, CPU, about 15 minutes):

```bash
python -m freq_transforms sweep --bundle bundles/hippocampus_mri_fd_segmentation \\
    --dataset_dir <Task04_Hippocampus> --out runs/hippo_grid --n_train all --fusion early --seeds 0 \\
    --epochs 20 --overrides "{'val_interval': 5, 'num_workers': 0}"
```

With few training cases FD did not beat the plain UNet on this task (the repository's `docs/results.md`:
n = 4, 8, 17, two seeds each). Inference: `python -m monai.bundle run --config_file configs/inference.json
--input_dir <image or folder>`."""

TASKS: Dict[str, Dict[str, Any]] = {
    "red_nucleus_qsm_fd_segmentation": {
        "task": "red_nucleus", "title": "Red nucleus segmentation from QSM", "modality": "QSM (MRI)",
        "format": "susceptibility", "intensity": "percentile",
        "intensity_note": "QSM maps are signed and heavy-tailed: a few streak voxels of several ppm set min-max, "
                          "which squeezes the tissue range into a few percent of [0, 1]. Percentiles (0.5-99.5 %) "
                          "keep the contrast: on 6 phantoms the nucleus stands 0.571 above the rest of the head "
                          "after percentile scaling and 0.030 after min-max (`python -m freq_transforms contrast "
                          "--task red_nucleus`); the brightest iron-rich tissue saturates at 1.",
        "labels": ["background", "red nucleus"], "spatial_size": [160, 160, 128],
        "split_ratio": [51, 13, 16], "dataset_dir": "/workspace/data/QSM_RedNucleus",
        "data_source": "Your own QSM scans with red nucleus labels in MSD layout (the paper used the private "
                       "ICEBERG cohort, which is not public). Built-in phantoms for a first run.",
        "data_license": "private",
    },
    "dentate_nucleus_qsm_fd_segmentation": {
        "task": "dentate_nucleus", "title": "Dentate nucleus segmentation from QSM", "modality": "QSM (MRI)",
        "format": "susceptibility", "intensity": "percentile",
        "intensity_note": "QSM maps are signed and heavy-tailed: a few streak voxels of several ppm set min-max, "
                          "which squeezes the tissue range into a few percent of [0, 1]. Percentiles (0.5-99.5 %) "
                          "keep the contrast: on 6 phantoms the nucleus stands 0.580 above the rest of the head "
                          "after percentile scaling and 0.026 after min-max (`python -m freq_transforms contrast "
                          "--task dentate_nucleus`); the brightest iron-rich tissue saturates at 1.",
        "labels": ["background", "dentate nucleus"], "spatial_size": [160, 160, 128],
        "split_ratio": [42, 11, 14], "dataset_dir": "/workspace/data/QSM_DentateNucleus",
        "data_source": "Your own QSM scans with dentate nucleus labels in MSD layout (the paper used the private "
                       "ICEBERG cohort, which is not public). Built-in phantoms for a first run.",
        "data_license": "private",
    },
    "spleen_ct_fd_segmentation": {
        "task": "spleen", "title": "Spleen segmentation from CT (MSD Task09)", "modality": "CT",
        "format": "hounsfield", "intensity": "ct_window",
        "intensity_note": "CT min-max is set by air (-1000 HU) and bone, which leaves soft tissue a narrow band; the "
                          "soft-tissue window -57..164 HU of MONAI's spleen bundle maps it to [0, 1]. On 6 CT "
                          "phantoms the spleen stands 0.296 above the other soft tissue after windowing and 0.036 "
                          "after min-max (`python -m freq_transforms contrast --task spleen`).",
        "labels": ["background", "spleen"], "spatial_size": [160, 160, 128],
        "split_ratio": [25, 7, 9], "dataset_dir": "/workspace/data/Task09_Spleen",
        "data_source": "Task09_Spleen.tar of the Medical Segmentation Decathlon (http://medicaldecathlon.com/)",
        "data_license": "msd",
    },
    "heart_mri_fd_segmentation": {
        "task": "heart", "title": "Left atrium segmentation from MRI (MSD Task02)", "modality": "MRI",
        "format": "magnitude", "intensity": "paper",
        "intensity_note": "MRI magnitude has arbitrary units and no outliers of note: min-max per image, as in the "
                          "paper and in every real-data result of this repository.",
        "labels": ["background", "left atrium"], "spatial_size": [160, 160, 128],
        "split_ratio": [12, 4, 4], "dataset_dir": "/workspace/data/Task02_Heart",
        "data_source": "Task02_Heart.tar of the Medical Segmentation Decathlon (http://medicaldecathlon.com/)",
        "data_license": "msd",
    },
    "hippocampus_mri_fd_segmentation": {
        "task": "hippocampus", "title": "Hippocampus (anterior/posterior) segmentation from MRI (MSD Task04)",
        "modality": "MRI", "format": "magnitude", "intensity": "paper",
        "intensity_note": "MRI magnitude has arbitrary units and no outliers of note: min-max per image, as in the "
                          "paper and in every real-data result of this repository.",
        "labels": ["background", "anterior", "posterior"],
        "spatial_size": [64, 64, 48], "split_ratio": [166, 42, 52], "dataset_dir": "/workspace/data/Task04_Hippocampus",
        "data_source": "Task04_Hippocampus.tar of the Medical Segmentation Decathlon (http://medicaldecathlon.com/)",
        "data_license": "msd",
        # the shipped models/model.pt: early fusion on the full train part (docs/results.md of the repository)
        "fusion": "early",
        "arch": "paper",
        "eval_metrics": {"test_mean_dice": 0.8439, "test_mean_dice_ci95": [0.8328, 0.8546], "test_hd95_mm": 1.708,
                         "test_hd95_mm_ci95": [1.523, 1.926], "val_mean_dice": 0.8375, "test_cases": 42,
                         "train_cases": 132, "epochs": 20},
        "expected_results": HIPPOCAMPUS_RESULTS,
    },
}


def _keys(*keys: str) -> List[str]:
    return list(keys)


def _preprocessing(keys: List[str]) -> List[Dict[str, Any]]:
    """Paper preprocessing (resize to the task's fixed size, labels nearest-neighbour) with the bundle's
    intensity scaling (min-max in the paper)."""
    modes = ["trilinear" if k == "image" else "nearest" for k in keys]
    return [
        {"_target_": "LoadImaged", "keys": keys, "image_only": True},
        {"_target_": "EnsureChannelFirstd", "keys": keys},
        {"_target_": "Orientationd", "keys": keys, "axcodes": "RAS"},
        {"_target_": "Lambdad", "keys": "image", "func": "$lambda x: torch.nan_to_num(x, 0.0, 0.0, 0.0)",
         "_disabled_": "$@nan_policy != 'zero'"},
        {"_target_": "freq_transforms.intensity.IntensityScaled", "keys": "image", "mode": "@intensity",
         "window": "@ct_window", "percentiles": "@intensity_percentiles"},
        {"_target_": "Resized", "keys": keys, "spatial_size": "@spatial_size", "mode": modes},
        {"_target_": "EnsureTyped", "keys": keys, "dtype": "$torch.float32"},
    ]


def _network_def() -> Dict[str, Any]:
    return {
        "_target_": "freq_transforms.FrequencyDisentangledNet",
        "backbone": "@backbone", "backbone_kwargs": "@backbone_kwargs",
        "in_channels": "@in_channels", "out_channels": "@num_classes", "spatial_dims": 3,
        "fusion": "@fusion", "arch": "@arch", "cutoff": "@cutoff", "mask": "@mask", "fuse": "@fuse", "features": "@features",
        "learnable_cutoff": "@learnable_cutoff", "centered": "@centered",
    }


def _common(spec: Dict[str, Any]) -> Dict[str, Any]:
    return {
        "imports": ["$import glob", "$import os", "$import torch", "$import monai", "$import freq_transforms",
                    "$import freq_transforms.data", "$import freq_transforms.handlers",
                    "$import freq_transforms.intensity"],
        "bundle_root": ".",
        "ckpt_dir": "$@bundle_root + '/models'",
        "output_dir": "$@bundle_root + '/eval'",
        "dataset_dir": spec["dataset_dir"],
        "spatial_size": spec["spatial_size"],
        "num_classes": len(spec["labels"]),
        "in_channels": 1,
        "nan_policy": "error",
        "intensity": spec["intensity"],  # paper (min-max) | ct_window | percentile; reason in docs/README.md
        "ct_window": [-57, 164],
        "intensity_percentiles": [0.5, 99.5],
        "fusion": spec.get("fusion", "late"),  # a shipped checkpoint fixes its bundle's default
        "arch": spec.get("arch", "v2"),
        "cutoff": 0.1,
        "mask": "box",
        # concat, not the released code's spectral replacement: with late fusion the spectral op leaves the
        # output's low band to one linear conv of the low image, and it learns far slower (bundle README)
        "fuse": "concat",
        "centered": True,
        "learnable_cutoff": False,
        "features": 8,
        "backbone": "UNet",
        "backbone_kwargs": {},
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "amp": "$torch.cuda.is_available()",
        "use_amp": "$bool(@amp) and torch.device(@device).type == 'cuda'",
        "num_workers": 2,
        "network_def": _network_def(),
        "network": "$@network_def.to(@device)",
    }


def _postprocessing(num_classes: str, save: Dict[str, Any] | None = None) -> List[Dict[str, Any]]:
    """Softmax, back to the original grid, argmax (optionally saved), the original label, one-hot for metrics."""
    return [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "Invertd", "keys": "pred", "transform": "@validate#preprocessing", "orig_keys": "image",
         "nearest_interp": False, "to_tensor": True},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        *([save] if save else []),
        {"_target_": "DeleteItemsd", "keys": "label"},
        {"_target_": "CopyItemsd", "keys": "label_orig", "names": "label"},
        {"_target_": "AsDiscreted", "keys": ["pred", "label"], "to_onehot": [num_classes, num_classes]},
    ]


def train_config(spec: Dict[str, Any]) -> Dict[str, Any]:
    config = _common(spec)
    config["imports"].append("$import ignite")
    config.update({
        "n_train": None,
        "seed": 0,
        "split_seed": 0,
        "split_ratio": spec["split_ratio"],
        "epochs": 300,
        "val_interval": 5,
        "learning_rate": 0.001,
        "batch_size": 2,
        "cache_rate": 1.0,
        "augment": False,
        "check_data": True,
        "folds": None,
        "fold": 0,
        "split_file": "split.json",
        "split": "$freq_transforms.data.bundle_split(dataset_dir=@dataset_dir, split_ratio=@split_ratio, "
                 "split_seed=@split_seed, seed=@seed, n_train=@n_train, output_dir=@output_dir, "
                 "num_classes=@num_classes, in_channels=@in_channels, nan_policy=@nan_policy, check=@check_data, "
                 "folds=@folds, fold=@fold, split_file=@split_file)",
        "loss": {"_target_": "DiceCELoss", "include_background": False, "to_onehot_y": True, "softmax": True,
                 "batch": True, "smooth_nr": 1e-5, "smooth_dr": 1e-5},
        "optimizer": {"_target_": "torch.optim.Adam", "params": "$@network.parameters()", "lr": "@learning_rate"},
    })
    keys = _keys("image", "label")
    config["train"] = {
        "deterministic_transforms": _preprocessing(keys),
        "augmentations": [
            {"_target_": "RandAffined", "keys": keys, "prob": 0.5, "rotate_range": [0.26, 0.26, 0.26],
             "scale_range": [0.1, 0.1, 0.1], "mode": ["bilinear", "nearest"], "padding_mode": "border"},
            {"_target_": "RandScaleIntensityd", "keys": "image", "factors": 0.1, "prob": 0.5},
            {"_target_": "RandShiftIntensityd", "keys": "image", "offsets": 0.05, "prob": 0.5},
            {"_target_": "RandGaussianNoised", "keys": "image", "std": 0.02, "prob": 0.3},
        ],
        "random_transforms": "$@train#augmentations if @augment else []",
        "preprocessing": {"_target_": "Compose",
                          "transforms": "$@train#deterministic_transforms + @train#random_transforms"},
        "dataset": {"_target_": "CacheDataset", "data": "$@split['train']", "transform": "@train#preprocessing",
                    "cache_rate": "@cache_rate", "num_workers": "@num_workers"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@train#dataset", "batch_size": "@batch_size",
                       "shuffle": True, "num_workers": "@num_workers"},
        "inferer": {"_target_": "SimpleInferer"},
        "handlers": [
            # validates every val_interval epochs and after the last one (MONAI Label trains with max_epochs 1)
            {"_target_": "freq_transforms.handlers.PeriodicValidation", "validator": "@validate#evaluator",
             "interval": "@val_interval"},
            {"_target_": "freq_transforms.handlers.SaveIfNeverValidated", "saver": "@best_model_saver"},
            {"_target_": "StatsHandler", "tag_name": "train_loss",
             "output_transform": "$monai.handlers.from_engine(['loss'], first=True)"},
            {"_target_": "TensorBoardStatsHandler", "log_dir": "@output_dir", "tag_name": "train_loss",
             "output_transform": "$monai.handlers.from_engine(['loss'], first=True)"},
        ],
        "trainer": {"_target_": "SupervisedTrainer", "max_epochs": "@epochs", "device": "@device",
                    "train_data_loader": "@train#dataloader", "network": "@network", "loss_function": "@loss",
                    "optimizer": "@optimizer", "inferer": "@train#inferer", "train_handlers": "@train#handlers",
                    "amp": "@use_amp"},
    }
    val_keys = _keys("image", "label")
    config["validate"] = {
        # the label is resized with the image for the network; metrics use the original label grid
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "CopyItemsd", "keys": "label", "names": "label_orig"},
            *_preprocessing(val_keys),
            {"_target_": "LoadImaged", "keys": "label_orig", "image_only": True},
            {"_target_": "EnsureChannelFirstd", "keys": "label_orig"},
        ]},
        "dataset": {"_target_": "CacheDataset", "data": "$@split['val']", "transform": "@validate#preprocessing",
                    "cache_rate": "@cache_rate", "num_workers": "@num_workers"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@validate#dataset", "batch_size": 1,
                       "shuffle": False, "num_workers": "@num_workers"},
        "inferer": {"_target_": "SimpleInferer"},
        "postprocessing": {"_target_": "Compose",
                           "transforms": _postprocessing("@num_classes")},
        "handlers": [
            {"_target_": "StatsHandler", "iteration_log": False},
            {"_target_": "TensorBoardStatsHandler", "log_dir": "@output_dir", "iteration_log": False},
            "@validation_csv",
            "@best_model_saver",
        ],
        "key_metric": {"val_mean_dice": {"_target_": "MeanDice", "include_background": False,
                                         "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}},
        # val_dice_<class> for every foreground class: a class that is never predicted shows at once
        "class_metrics": "$freq_transforms.handlers.class_dice_metrics(@class_names)",
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@validate#dataloader",
                      "network": "@network", "inferer": "@validate#inferer",
                      "postprocessing": "@validate#postprocessing", "key_val_metric": "@validate#key_metric",
                      "additional_metrics": "@validate#class_metrics",
                      "val_handlers": "@validate#handlers", "amp": "@use_amp"},
    }
    config["class_names"] = spec["labels"]
    config["validation_csv"] = {"_target_": "freq_transforms.handlers.ValidationMetricsCSV",
                                "path": "$@output_dir + '/validation_metrics.csv'"}
    # models/model.pt (best validation Dice) and models/resume.pt (last epoch) are written atomically;
    # the same command after a kill resumes from resume.pt (set resume=false to start afresh)
    # model.pt records the settings that built the network, so inference can name an override that does not fit
    config["best_model_saver"] = {"_target_": "freq_transforms.handlers.BestModelSaver", "save_dir": "@ckpt_dir",
                                  "network": "@network", "filename": "model.pt",
                                  "record": {"spatial_size": "@spatial_size",
                                             "freq_transforms_version": "$freq_transforms.__version__"}}
    config["resume"] = True
    # RNG states in the resume file: a killed and resumed run ends with the same weights as an uninterrupted one
    config["random_states"] = {"_target_": "freq_transforms.handlers.RandomStates",
                               "transforms": "@train#preprocessing"}
    config["resume_handler"] = {
        "_target_": "freq_transforms.handlers.ResumeCheckpoint", "path": "$@ckpt_dir + '/resume.pt'",
        "save_dict": {"model": "@network", "optimizer": "@optimizer", "trainer": "@train#trainer",
                      "best_model": "@best_model_saver", "validation_csv": "@validation_csv",
                      "random_states": "@random_states"},
        "map_location": "@device", "enabled": "@resume"}
    config["initialize"] = ["$monai.utils.set_determinism(seed=@seed)",
                            "$freq_transforms.handlers.set_aside_previous_weights(@ckpt_dir, @resume)",
                            "$@resume_handler.attach(@train#trainer)"]
    config["run"] = ["$@train#trainer.run()"]
    config["training"] = "%run"
    return config


def evaluate_config(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Override of train.json: score models/model.pt on the fixed test split (or test_dataset_dir)."""
    return {
        "test_dataset_dir": None,
        "split_file": "evaluate_split.json",  # the training run's eval/split.json stays as it was
        "validate#dataset#data": "$@split['test'] if @test_dataset_dir is None else "
                                 "freq_transforms.data.checked_datalist(@test_dataset_dir, @num_classes, @in_channels, @nan_policy)",
        "validate#dataset#cache_rate": 0,
        "validate#postprocessing#transforms": _postprocessing("@num_classes", {
            "_target_": "SaveImaged", "_disabled_": "$not @save_predictions", "keys": "pred",
            "output_dir": "$@output_dir + '/predictions'", "resample": False, "separate_folder": False,
            "output_postfix": "seg", "output_dtype": "$numpy.uint8", "squeeze_end_dims": True}),
        "save_predictions": False,
        "validate#additional_metrics": {
            # in mm: MONAI's HausdorffDistance handler passes no spacing (voxels); this metric reads each label's affine
            "test_hd95": {"_target_": "IgniteMetricHandler", "save_details": True,
                         "metric_fn": {"_target_": "freq_transforms.metrics.HausdorffDistanceMM",
                                       "include_background": False, "percentile": 95},
                         "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}},
        # the scores are of the test split (or test_dataset_dir): named test_*, not val_*
        "validate#key_metric": {"test_mean_dice": {"_target_": "MeanDice", "include_background": False,
                                                   "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}},
        "validate#class_metrics": "$freq_transforms.handlers.class_dice_metrics(@class_names, prefix='test')",
        "validate#evaluator#additional_metrics": "$dict(@validate#class_metrics, **@validate#additional_metrics)",
        "validate#handlers": [
            {"_target_": "freq_transforms.handlers.CheckpointLoader", "load_path": "$@ckpt_dir + '/model.pt'",
             "network": "@network", "map_location": "@device", "spatial_size": "@spatial_size"},
            {"_target_": "StatsHandler", "iteration_log": False},
            {"_target_": "MetricsSaver", "save_dir": "@metrics_staging_dir", "metrics": ["test_mean_dice", "test_hd95"],
             "metric_details": ["test_mean_dice", "test_hd95"],
             "batch_transform": "$lambda batch: [item['image'].meta for item in batch]", "summary_ops": "*"},
        ],
        "initialize": ["$monai.utils.set_determinism(seed=@seed)"],
        # reports are staged and renamed into output_dir only when complete
        "metrics_staging_dir": "$@output_dir + '/.metrics_staging'",
        "run": ["$@validate#evaluator.run()", "$freq_transforms.data.move_files(@metrics_staging_dir, @output_dir)"],
        "evaluating": "%run",
    }


def inference_config(spec: Dict[str, Any]) -> Dict[str, Any]:
    config = _common(spec)
    config.update({
        "input_dir": "$@dataset_dir + '/imagesTs'",
        "datalist": "$freq_transforms.data.bundle_image_list(@input_dir)",
        "output_ext": ".nii.gz",
        "output_dtype": "$numpy.uint8",
        "output_postfix": "seg",
        "separate_folder": False,
        "preprocessing": {"_target_": "Compose", "transforms": _preprocessing(["image"])},
        "dataset": {"_target_": "Dataset", "data": "$[{'image': i} for i in @datalist]",
                    "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False,
                       "num_workers": "@num_workers"},
        "inferer": {"_target_": "SimpleInferer"},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "nearest_interp": False, "to_tensor": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_ext": "@output_ext",
             "output_dtype": "@output_dtype", "output_postfix": "@output_postfix",
             "separate_folder": "@separate_folder", "resample": False},
        ]},
        "handlers": [{"_target_": "StatsHandler", "iteration_log": False}],
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@dataloader",
                      "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing",
                      "val_handlers": "@handlers", "amp": "@use_amp"},
        "checkpointloader": {"_target_": "freq_transforms.handlers.CheckpointLoader",
                             "load_path": "$@bundle_root + '/models/model.pt'", "network": "@network",
                             "map_location": "@device", "spatial_size": "@spatial_size"},
        "initialize": ["$monai.utils.set_determinism(seed=0)", "$@checkpointloader(@evaluator)"],
        "run": ["$@evaluator.run()"],
        "inference": "%run",
    })
    config["imports"].append("$import numpy")
    return config


def multi_gpu_config() -> Dict[str, Any]:
    """torchrun DDP override of train.json: nccl on GPUs, gloo on CPU."""
    return {
        # cuda:<LOCAL_RANK>: the global rank names a GPU only on the first node
        "device": "$freq_transforms.handlers.distributed_device()",
        "network": {"_target_": "torch.nn.parallel.DistributedDataParallel", "module": "$@network_def.to(@device)",
                    "device_ids": "$[@device] if torch.cuda.is_available() else None"},
        "train#sampler": {"_target_": "DistributedSampler", "dataset": "@train#dataset", "even_divisible": True,
                          "shuffle": True},
        "train#dataloader#sampler": "@train#sampler",
        "train#dataloader#shuffle": False,
        "train#trainer#train_handlers": "$@train#handlers[: -2 if dist.get_rank() > 0 else None]",
        # every rank validates every case (no sampler): MONAI's metrics all-gather across ranks, so each case
        # counts once per rank and the mean is the single-process mean, whatever the number of validation
        # cases (a DistributedSampler fails with fewer cases than ranks, and padding would count one twice)
        "validate#evaluator#val_handlers": "$None if dist.get_rank() > 0 else @validate#handlers",
        "split": "$freq_transforms.data.bundle_split(dataset_dir=@dataset_dir, split_ratio=@split_ratio, "
                 "split_seed=@split_seed, seed=@seed, n_train=@n_train, "
                 "output_dir=@output_dir if dist.get_rank() == 0 else None, num_classes=@num_classes, "
                 "in_channels=@in_channels, nan_policy=@nan_policy, check=@check_data, folds=@folds, fold=@fold, "
                 "split_file=@split_file)",
        "initialize": [
            "$import torch.distributed as dist",
            "$dist.is_initialized() or dist.init_process_group(backend='nccl' if torch.cuda.is_available() else 'gloo')",
            "$torch.cuda.set_device(@device) if torch.cuda.is_available() else None",
            "$monai.utils.set_determinism(seed=@seed)",
            "$freq_transforms.handlers.set_aside_previous_weights(@ckpt_dir, @resume)",
            "$@resume_handler.attach(@train#trainer)",
            "$import logging",
            "$@train#trainer.logger.setLevel(logging.WARNING if dist.get_rank() > 0 else logging.INFO)",
            "$@validate#evaluator.logger.setLevel(logging.WARNING if dist.get_rank() > 0 else logging.INFO)",
        ],
        "run": ["$@train#trainer.run()"],
        "training": "%run",
        "finalize": ["$import freq_transforms.handlers", "$freq_transforms.handlers.leave_process_group()"],
    }


def metadata(name: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    labels = spec["labels"]
    size = spec["spatial_size"]
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/"
                  "meta_schema_20240725.json",
        "version": VERSION,
        "changelog": CHANGELOG,
        "monai_version": "1.6.1",
        "pytorch_version": "2.13.0",
        "numpy_version": "2.4.6",
        "required_packages_version": {"freq_transforms": VERSION, "nibabel": "5.4.2", "pytorch-ignite": "0.5.5",
                                      "tensorboard": "2.21.0"},
        "supported_apps": {},
        "name": name,
        "task": spec["title"],
        "description": f"{spec['title']} with frequency-disentangled (FD) learning around a MONAI backbone. "
                       "The image is split in Fourier space into low and high frequencies, each passes its own "
                       "conv layer, and the two are fused early (before the backbone) or late (after it). "
                       "fusion=none gives the plain backbone for comparison.",
        "authors": "freq_transforms contributors",
        "copyright": "Copyright (c) freq_transforms contributors",
        "data_source": spec["data_source"],
        "data_type": "nibabel",
        "image_classes": f"single channel {spec['modality']} image, scaled to [0, 1] "
                         f"({INTENSITY_WORDS[spec['intensity']]}) and resized to {size[0]}x{size[1]}x{size[2]}",
        "label_classes": "single channel labels: " + ", ".join(f"{i} is {n}" for i, n in enumerate(labels)),
        "pred_classes": f"{len(labels)} channels (softmax logits): " +
                        ", ".join(f"channel {i} is {n}" for i, n in enumerate(labels)),
        "eval_metrics": spec.get("eval_metrics", {}),
        "intended_use": "Research on segmentation with few annotated scans. Not for clinical or diagnostic use.",
        "references": [PAPER, MSD],
        "network_data_format": {
            "inputs": {"image": {
                "type": "image", "format": spec["format"], "modality": spec["modality"], "num_channels": 1,
                "spatial_shape": size, "dtype": "float32", "value_range": [0, 1], "is_patch_data": False,
                "channel_def": {"0": "image"}}},
            "outputs": {"pred": {
                "type": "image", "format": "segmentation", "num_channels": len(labels), "spatial_shape": size,
                "dtype": "float32", "value_range": [0, 1], "is_patch_data": False,
                "channel_def": {str(i): n for i, n in enumerate(labels)}}},
        },
    }


INTENSITY_WORDS = {"paper": "min-max per image, as in the paper",
                   "ct_window": "Hounsfield window -57..164 HU, clipped",
                   "percentile": "0.5-99.5 percentiles of each image, clipped"}

LOGGING_CONF = logging_conf("INFO", "sys.stdout")

DATA_LICENSES = {
    "msd": """Third-party data license

This bundle ships no image data and no weights trained on third-party data unless
models/model.pt is present and metadata.json says so.

The data it is meant for is part of the Medical Segmentation Decathlon (MSD),
http://medicaldecathlon.com/, released under the Creative Commons
Attribution-ShareAlike 4.0 International license (CC-BY-SA 4.0),
https://creativecommons.org/licenses/by-sa/4.0/.
Cite: {msd}

Phantoms written by `python -m freq_transforms phantoms` are generated by this
package and free of any third-party rights (CC0).
""",
    "private": """Third-party data license

This bundle ships no image data. The paper it implements used QSM scans of the
ICEBERG cohort (Paris Brain Institute), which are private and not distributed.
Train it on your own data under your own data-use agreement.

Phantoms written by `python -m freq_transforms phantoms` are generated by this
package and free of any third-party rights (CC0).
""",
}


NO_WEIGHTS = """No weights trained on real data are shipped with this version. See the repository's README for the
phantom demo and `docs/` for real-data runs as they are made."""


def readme(name: str, spec: Dict[str, Any]) -> str:
    labels = ", ".join(f"{i} {n}" for i, n in enumerate(spec["labels"]))
    labels_no_bg = ", ".join(f"{n} = {i}" for i, n in enumerate(spec["labels"]) if i > 0)
    size = "x".join(str(s) for s in spec["spatial_size"])
    ratio = "/".join(str(r) for r in spec["split_ratio"])
    return f"""# {name}

{spec['title']} with **frequency-disentangled (FD) learning** (Fu et al., 2023), as a MONAI bundle.
The network is `freq_transforms.FrequencyDisentangledNet`: the image is split in Fourier space into a
low- and a high-frequency part (a centred box low-pass keeping `cutoff` = 10% of each axis's spectrum),
each goes through its own 3x3x3 conv (8 channels), and the two are fused *early* (before the backbone) or
*late* (the backbone sees only the high part; its output is fused with the low features). `fusion=none`
is the plain backbone, so every comparison is one override away.

Labels: {labels}. Input: one channel, min-max scaled, resized to {size} (labels nearest-neighbour);
predictions are mapped back to each image's original grid.

## Install

```bash
pip install torch==2.13.0   # or the torch build for your GPU
pip install "freq_transforms @ git+<this repository>"   # or: pip install -e <checkout>
```

## Data

An MSD-layout folder: `dataset.json` (with a `training` list of `image`/`label` pairs), `imagesTr/`,
`labelsTr/`. Default `dataset_dir`: `{spec['dataset_dir']}` ({spec['data_source']}).
The cases of `training` are split at participant level into train/val/test in the paper's proportions
({ratio}), seeded by `split_seed`; `n_train` takes the first n cases of a `seed`-ordered train part, so
smaller training sets are nested in larger ones and val/test never change. The split is written to
`<output_dir>/split.json` (evaluation writes its own `evaluate_split.json` beside it). Cases whose images are
identical (found by a hash of the voxels, e.g. MSD heart la_005 / la_026) always land in the same part.
`--folds K --fold k` cross-validates instead: test on fold k, validate on fold k + 1, train on the rest.

No data at hand? Phantoms, one command:

```bash
python -m freq_transforms phantoms --task {spec['task']} --out /tmp/{spec['task']}_phantoms --n 12
```

and add `--dataset_dir /tmp/{spec['task']}_phantoms` to the commands below.

## Commands (run from this folder)

```bash
# train (models/model.pt = best validation Dice); both spellings work
python -m monai.bundle run --config_file configs/train.json
python -m monai.bundle run training --config_file configs/train.json --dataset_dir <data>
# FD options: fusion none|early|late, cutoff, backbone, few cases, short run
python -m monai.bundle run --config_file configs/train.json --fusion early --cutoff 0.1 \\
    --backbone SegResNet --n_train 4 --epochs 150 --val_interval 5
# multi-GPU (nccl) or multi-process CPU (gloo)
torchrun --standalone --nproc_per_node=2 -m monai.bundle run \\
    --config_file "['configs/train.json','configs/multi_gpu_train.json']"
# evaluate models/model.pt on the fixed test split (or --test_dataset_dir <MSD folder>)
python -m monai.bundle run --config_file "['configs/train.json','configs/evaluate.json']"
# inference: label maps for every image in input_dir (default <dataset_dir>/imagesTs)
python -m monai.bundle run --config_file configs/inference.json --input_dir <folder or file>
# TorchScript export
python -m monai.bundle ckpt_export network_def --filepath models/model.ts \\
    --ckpt_file models/model.pt --meta_file configs/metadata.json --config_file configs/inference.json
```

What a run leaves in `<output_dir>` (default `eval/`): `split.json`; `validation_metrics.csv`, one row per
validation with `val_mean_dice` and `val_dice_<class>` for every foreground class (also in the log and
TensorBoard; a class with Dice 0, never predicted, is logged as a warning at once); after evaluation
`test_mean_dice_*.csv`, `test_hd95_*.csv` (per case and summary, named `test_*` because they score the test
split or `test_dataset_dir`) and `metrics.csv`. With torchrun the device of each process is
`cuda:<LOCAL_RANK>` (right on several nodes), and every rank validates every case, so any number of
validation cases works and each counts once.

## Use in MONAI Label

Checked against a real MONAI Label 0.8.5 server with monai 1.6.1, CPU only and offline: the bundle is listed
in `/info/` with its labels, `/infer` returns a label volume on the input image's grid, and a training
round writes new weights that the next inference uses (`bash ci/monailabel_e2e.sh` in the repository).

```bash
pip install monailabel==0.8.5 "freq_transforms @ git+<this repository>"   # an offline recipe: repository README
monailabel apps --download --name monaibundle --output apps   # copies the sample app; no network needed
cp -r <this bundle folder> apps/monaibundle/model/{name}
monailabel start_server --app apps/monaibundle --studies <folder of .nii.gz images> \
    --conf models {name} --conf zoo_source github --conf sam2 false
```

- The bundle is ignored until `models/model.pt` exists: train first (commands above) or use shipped weights.
- Keep `segmentation` in the folder name: MONAI Label takes the model type from it.
- Offline: `--conf zoo_source github` (anything but the default) stops the model-zoo lookup, so the local
  folder is used as is; `--conf sam2 false` skips the SAM2 model; `--conf skip_trainers true` hides training.
- Several bundles: `--conf models name1,name2`.
- Labels in the viewer come from `metadata.json` (`channel_def`): {labels_no_bg}.
- Training from MONAI Label (the Train button or `POST /train/{name}`) runs `configs/train.json` on the
  studies labelled in `labels/final`, with the request's `max_epochs` and `val_split`. Validation also runs
  after the last epoch, so even `max_epochs` 1 writes `models/model.pt` (best validation Dice); with
  `val_split` 0 the final weights are saved. The next inference request loads the new file.
- Inference uses `network_def`, `preprocessing`, `postprocessing` and `inferer` of `configs/inference.json`
  and nothing else; `freq_transforms` must be installed in the server's Python.

## Overridable keys

| key | default | meaning |
|---|---|---|
| `dataset_dir` | `{spec['dataset_dir']}` | MSD-layout folder |
| `fusion` | `{spec.get('fusion', 'late')}` | `none` (plain backbone), `early`, `late` |
| `arch` | `{spec.get('arch', 'v2')}` | `v2` (FD that starts as its backbone, at the backbone's cost) or `paper` (the released code's layers); a checkpoint of the other layout stops with the override to pass |
| `cutoff` | `0.1` | fraction of each axis's spectrum in the low band (paper's beta) |
| `mask` | `box` | `box` (paper), `ball`, `gaussian` |
| `fuse` | `concat` | `arch=paper` only: `concat`, `add`, `spectral` (the paper's code: the low features' spectrum replaces the low band of the other branch) |
| `centered` | `true` | `false` reproduces the released code, whose "low" band is really the highest frequencies |
| `learnable_cutoff` | `false` | train the cutoff through a soft mask |
| `backbone` | `UNet` | any `monai.networks.nets` name, e.g. `SegResNet`, `DynUNet`; `backbone_kwargs` for its options |
| `n_train` | `null` (all) | training cases, nested subsets of the train part |
| `folds`, `fold` | `null`, `0` | K-fold cross-validation: test on fold `fold`, validate on the next fold, train on the rest (`split_ratio` unused); cases with identical images always share a part |
| `seed`, `split_seed` | `0`, `0` | training seed / split seed |
| `epochs`, `val_interval` | `300`, `5` | as in the paper's code (about 300 epochs) |
| `learning_rate`, `batch_size` | `0.001`, `2` | Adam |
| `augment` | `false` | `true` adds random affine, intensity scale/shift and noise (the paper used none) |
| `device`, `amp` | CUDA if available | AMP is only used on CUDA |
| `num_workers`, `cache_rate` | `2`, `1.0` | data loading |
| `check_data` | `true` | read every case once before training and stop with one message naming a bad file |
| `nan_policy` | `error` | `zero` replaces NaN/Inf voxels by 0 instead of stopping |
| `intensity` | `{spec['intensity']}` | `paper` (min-max, the paper's), `ct_window` (`ct_window` HU, default -57..164), `percentile` (`intensity_percentiles`, default 0.5-99.5); why this default: below |
| `in_channels` | `1` | image channels (a 4-D file with N volumes needs `in_channels` N) |
| `resume` | `true` | the same command after a crash continues from `models/resume.pt`; a fresh run first moves an existing `models/model.pt` (and `model.ts`) to `models/previous/<time>/` and logs where |
| `spatial_size` | `{spec['spatial_size']}` | fixed network input size |

Why `fuse=concat` by default: with late fusion the paper code's spectral operation hands the whole low
band of the output to one linear conv of the low image. On hippocampus phantoms (14 cases, 48x48x32,
25 epochs, validation Dice at epoch 25) late fusion reached 0.77 with `concat`, 0.31 with `add` and 0.09 with
`spectral`, against 0.85 for `none` and early fusion; command:
`python -m freq_transforms phantoms --task hippocampus --out /tmp/hip14 --n 14 --seed 3` then
`python -m monai.bundle run --config_file configs/train.json --dataset_dir /tmp/hip14 --epochs 25 --val_interval 5 --fusion late --fuse concat --spatial_size "[48,48,32]"`.

Intensity: `{spec['intensity']}` by default. {spec['intensity_note']} The paper's min-max is `--intensity paper`.

Training follows the paper: Adam lr 1e-3, Dice-based loss (DiceCE, background excluded), no augmentation,
resize to a fixed size. Deliberate differences from the released code: labels
are resized nearest-neighbour (the code interpolated them), and model selection uses a held-out validation
split (the code validated on the training loader).

## Weights carry their settings

`models/model.pt` is a plain state dict (MONAI Label and `load_state_dict` read it as usual) that also records
the settings that built its network (`fusion`, `arch`, `cutoff`, `features`, `backbone_kwargs`, ...), the
`spatial_size` it was trained at and the `freq_transforms` version that trained it. Inference and evaluation with settings that do not
fit stop before any output with one line, for example:

```
ERROR - checkpoint models/model.pt does not fit the configured network: it was trained with fusion='late', the config says fusion='early': pass --fusion late
```

Files without the record (weights of bundle versions before 0.3.0) are matched by their layer shapes
(`arch`, `fusion`, `fuse`). A fresh training run moves an existing `models/model.pt` (and a `model.ts`
exported from it) to `models/previous/<time>/` and logs where. `ckpt_export` is MONAI's and does not check:
give it the same overrides as inference.

## Expected results

{spec.get('expected_results', NO_WEIGHTS)}

## License

Code: Apache-2.0 (`LICENSE`). Data: see `docs/data_license.txt`.
"""


def bundle_files(name: str, spec: Dict[str, Any]) -> Dict[str, str]:
    as_json = lambda obj: json.dumps(obj, indent=4) + "\n"  # noqa: E731
    return {
        "configs/metadata.json": as_json(metadata(name, spec)),
        "configs/train.json": as_json(train_config(spec)),
        "configs/evaluate.json": as_json(evaluate_config(spec)),
        "configs/inference.json": as_json(inference_config(spec)),
        "configs/multi_gpu_train.json": as_json(multi_gpu_config()),
        "configs/logging.conf": LOGGING_CONF,
        "docs/README.md": readme(name, spec),
        "docs/data_license.txt": DATA_LICENSES[spec["data_license"]].format(msd=MSD),
        "LICENSE": (ROOT / "LICENSE").read_text(),
    }


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report files that differ instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, spec in TASKS.items():
        for rel, text in bundle_files(name, spec).items():
            path = BUNDLES / name / rel
            if args.check:
                if not path.is_file() or path.read_text() != text:
                    stale.append(str(path.relative_to(ROOT)))
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run python ci/build_bundles.py):\n  " + "\n  ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
