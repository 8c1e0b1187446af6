"""The one schema of a bundle's settings: each top-level key a user may set (``--fusion early``) as a
:class:`Setting`: its JSON-schema type with the allowed values (taken from the module whose code uses them), its
default, whether it may be null, whether trained weights depend on it, its part of the pipeline, the configs that
read it and its meaning. :mod:`freq_transforms.bundle.settings` checks values against it; ``bundles build`` writes
the keys, defaults and README tables from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

__all__ = ["Setting", "PARTS", "settings_table", "schema", "words"]

PARTS = ("data", "network", "grid", "intensity", "training", "prediction")
BOTH, TRAIN, INFERENCE, EVALUATE = ("train", "inference"), ("train",), ("inference",), ("evaluate",)
PART_CONFIGS = {"data": TRAIN, "network": BOTH, "grid": BOTH, "intensity": BOTH, "training": TRAIN,
                "prediction": BOTH}  # the workflows that read a part's keys (evaluate.json reads train.json's)


@dataclass(frozen=True)
class Setting:
    """One bundle key: ``kind`` is its JSON-schema type, ``weights`` whether trained weights depend on it (the
    weights record it and a mismatch is reported on load), ``meaning`` its README line."""

    kind: Dict[str, Any]
    default: Any
    part: str
    meaning: str
    nullable: bool = False
    weights: bool = False
    configs: Tuple[str, ...] = ()

    @property
    def read_by(self) -> Tuple[str, ...]:
        """The configs that set this key (``train``, ``inference``, ``evaluate``): ``configs``, else its part's."""
        return self.configs or PART_CONFIGS[self.part]


def _ints(n: int, minimum: int = 1) -> Dict[str, Any]:
    return {"type": "array", "items": {"type": "integer", "minimum": minimum}, "minItems": n, "maxItems": n}


def _numbers(n: int, exclusive_minimum: Optional[float] = None) -> Dict[str, Any]:
    item: Dict[str, Any] = {"type": "number"}
    if exclusive_minimum is not None:
        item["exclusiveMinimum"] = exclusive_minimum
    return {"type": "array", "items": item, "minItems": n, "maxItems": n}


def _one_of(choices: Sequence[str]) -> Dict[str, Any]:
    return {"enum": list(choices)}


BOOL: Dict[str, Any] = {"type": "boolean"}
POSITIVE_INT: Dict[str, Any] = {"type": "integer", "minimum": 1}
POSITIVE: Dict[str, Any] = {"type": "number", "exclusiveMinimum": 0}
STRING: Dict[str, Any] = {"type": "string"}


@lru_cache(maxsize=1)
def settings_table() -> Dict[str, Setting]:
    """Every bundle setting, key -> :class:`Setting` (built on first use: the allowed values live in modules that
    import torch)."""
    from ..data.case_checks import NAN_POLICIES
    from ..fd_options import ARCHS, FUSE_OPS, FUSIONS
    from ..fourier import MASK_SHAPES
    from ..handlers.schedule import LR_SCHEDULES
    from ..intensity import INTENSITY_MODES
    from ..sampling import SAMPLINGS

    s = Setting
    return {
        "dataset_dir": s(STRING, "/workspace/data", "data", "MSD-layout folder (inference: its `imagesTs`)",
                         configs=BOTH),
        "split_ratio": s(_numbers(3), [12, 4, 4], "data", "train/validation/test proportions"),
        "split_seed": s({"type": "integer"}, 0, "data", "seed of the split"),
        "n_train": s(POSITIVE_INT, None, "data", "training cases, nested subsets of the train part (null: all)",
                     nullable=True),
        "folds": s({"type": "integer", "minimum": 2}, None, "data", "K-fold cross-validation: test on fold `fold`, "
                   "validate on the next, train on the rest (`split_ratio` unused)", nullable=True),
        "fold": s({"type": "integer", "minimum": 0}, 0, "data", "the test fold of `folds`"),
        "members": s({"type": "integer", "minimum": 2}, None, "data", "a fold ensemble: the train part cut into "
                     "`members` folds; member `member` trains on the others and writes `models/fold<member>/`",
                     nullable=True),
        "member": s({"type": "integer", "minimum": 0}, 0, "data", "which member of `members` trains"),
        "train_on_val": s(BOOL, False, "data", "train on the validation part too (every case outside the test part)"),
        "split_file": s(STRING, "split.json", "data", "the split written under `output_dir`"),
        "check_data": s(BOOL, True, "data", "read every case once before training; a bad file stops in one line"),
        "nan_policy": s(_one_of(NAN_POLICIES), "error", "data", "`zero` replaces NaN/Inf voxels by 0",
                        configs=BOTH),
        "cache_rate": s({"type": "number", "minimum": 0, "maximum": 1}, 1.0, "data", "share of cases cached"),
        "num_workers": s({"type": "integer", "minimum": 0}, 2, "data", "data loading processes", configs=BOTH),
        "in_channels": s(POSITIVE_INT, 1, "network", "image channels", weights=True),
        "num_classes": s({"type": "integer", "minimum": 2}, 2, "network", "classes, background included",
                         weights=True),
        "class_names": s({"type": "array", "items": STRING}, ["background", "foreground"], "network",
                         "one name per class, background first", weights=True),
        "fusion": s(_one_of(FUSIONS), "late", "network", "`none` (plain backbone), `early`, `late`", weights=True),
        "arch": s(_one_of(ARCHS), "v2", "network", "`v2` (starts as its backbone) or `paper` (the released "
                  "code's layers)", weights=True),
        "cutoff": s({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, 0.1, "network",
                    "fraction of each axis's spectrum in the low band", weights=True),
        "mask": s(_one_of(MASK_SHAPES), "box", "network", "shape of the low band", weights=True),
        "fuse": s(_one_of(FUSE_OPS), "concat", "network", "`arch` paper only: how the branches fuse", weights=True),
        "centered": s(BOOL, True, "network", "`false` reproduces the released code, whose \"low\" band is the "
                      "highest frequencies", weights=True),
        "learnable_cutoff": s(BOOL, False, "network", "train the cutoff through a soft mask", weights=True),
        "features": s(POSITIVE_INT, 8, "network", "channels of each branch conv", weights=True),
        "backbone": s(STRING, "UNet", "network", "any `monai.networks.nets` name", weights=True),
        "backbone_kwargs": s({"type": "object"}, {}, "network", "the backbone's options", weights=True),
        "sampling": s(_one_of(SAMPLINGS), "patch", "grid", "`patch` (target spacing, patches, sliding window) or "
                      "`resize` (the paper's fixed grid)", weights=True),
        "spatial_size": s(_ints(3), [128, 128, 96], "grid", "`resize` only: the network input size",
                          weights=True),
        "patch_size": s(_ints(3), [96, 96, 64], "grid", "`patch` only: training patch and sliding window, "
                        "divisible by the backbone's strides", weights=True),
        "target_spacing": s({"anyOf": [_numbers(3, 0), {"const": "median"}]}, "median", "grid", "`patch` only: "
                            "mm per voxel along R, A, S, or `median` of the training cases", weights=True),
        "crop_foreground": s(BOOL, False, "grid", "`patch` only: crop each volume to its nonzero image region"),
        "intensity": s(_one_of(INTENSITY_MODES), "paper", "intensity", "`paper` (min-max), `ct_window` or "
                       "`percentile`", weights=True),
        "ct_window": s(_numbers(2), [-57, 164], "intensity", "`ct_window` only: HU window", weights=True),
        "intensity_percentiles": s(_numbers(2), [0.5, 99.5], "intensity", "`percentile` only: the percentiles",
                                   weights=True),
        "seed": s({"type": "integer"}, 0, "training", "training seed"),
        "epochs": s(POSITIVE_INT, 300, "training", "training epochs (unless `steps`)"),
        "steps": s(POSITIVE_INT, None, "training", "a fixed budget of optimiser steps (whole epochs of "
                   "`iterations_per_epoch`); the final weights are kept", nullable=True),
        "val_interval": s(POSITIVE_INT, 5, "training", "epochs between validations"),
        "learning_rate": s(POSITIVE, 0.001, "training", "Adam's learning rate"),
        "batch_size": s(POSITIVE_INT, 2, "training", "volumes per batch"),
        "samples_per_volume": s(POSITIVE_INT, 2, "training", "`patch` only: patches per volume"),
        "iterations_per_epoch": s(POSITIVE_INT, 50, "training", "`patch` (or `steps`): optimiser steps per epoch"),
        "lr_schedule": s(_one_of(LR_SCHEDULES), None, "training", "`poly` or `constant` (null: `poly` in patch "
                         "mode, `constant` in resize mode)", nullable=True),
        "augment": s(BOOL, False, "training", "random affine, intensity scale/shift and noise"),
        "flip_axes": s({"type": "array", "items": {"enum": [0, 1, 2]}}, [], "training",
                       "axes flipped at random in training"),
        "resume": s(BOOL, True, "training", "continue from `models/resume.pt` after a crash"),
        "amp": s(BOOL, None, "training", "mixed precision (null: on CUDA only; never on a CPU)", nullable=True,
                 configs=BOTH),
        "sw_overlap": s({"type": "number", "minimum": 0, "exclusiveMaximum": 1}, 0.5, "prediction",
                        "`patch` only: sliding-window overlap"),
        "sw_batch_size": s(POSITIVE_INT, 2, "prediction", "`patch` only: windows per forward pass"),
        "largest_component": s(BOOL, False, "prediction", "keep the largest connected region of each class"),
        "tta": s(BOOL, False, "prediction", "average the prediction over mirrored inputs (`tta_axes`)"),
        "tta_axes": s({"type": "array", "items": {"enum": [0, 1, 2]}}, [0, 1, 2], "prediction",
                      "axes mirrored by `tta`"),
        "ensemble": s(BOOL, False, "prediction", "average the fold members `models/fold*/model.pt`",
                      configs=INFERENCE + EVALUATE),
        "separate_folder": s(BOOL, False, "prediction", "inference: one folder per case", configs=INFERENCE),
        "output_postfix": s(STRING, "seg", "prediction", "inference: label file name postfix", configs=INFERENCE),
        "output_ext": s(STRING, ".nii.gz", "prediction", "inference: label file extension", configs=INFERENCE),
        "test_dataset_dir": s(STRING, None, "prediction", "evaluation: an MSD-layout folder scored instead of the "
                              "split's test part", nullable=True, configs=EVALUATE),
        "save_predictions": s(BOOL, False, "prediction", "evaluation: write the label maps to "
                              "`<output_dir>/predictions`", configs=EVALUATE),
    }


@lru_cache(maxsize=1)
def schema() -> Dict[str, Any]:
    """The JSON schema of a bundle's settings (draft 7): one property per :func:`settings_table` key."""
    properties = {}
    for key, setting in settings_table().items():
        kind = dict(setting.kind)
        properties[key] = {"anyOf": [kind, {"type": "null"}]} if setting.nullable else kind
    return {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": properties}


def _noun(kind: Mapping[str, Any], plural: bool = False) -> str:
    """A scalar schema fragment in words: ``a positive integer``, ``numbers >= 0 and < 1`` ..."""
    kind_type = kind.get("type")
    if kind_type == "boolean":
        return "true or false"
    names = {"integer": ("an integer", "integers"), "number": ("a number", "numbers"), "string": ("a string", "strings"),
             "object": ("a mapping", "mappings")}
    if kind_type in ("integer", "number") and (kind.get("minimum") == 1 and kind_type == "integer" or
                                               kind.get("exclusiveMinimum") == 0 and len(kind) == 2):
        return f"positive {names[kind_type][1]}" if plural else f"a positive {kind_type}"
    bounds = [f"{op} {kind[key]}" for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                                                  ("exclusiveMaximum", "<")) if key in kind]
    return " ".join([names.get(kind_type, (str(kind_type),) * 2)[plural], " and ".join(bounds)]).strip()


def words(kind: Mapping[str, Any]) -> str:
    """What a schema fragment allows, in words, for the one-line error."""
    if "enum" in kind:
        return "one of " + ", ".join(str(v) for v in kind["enum"])
    if "anyOf" in kind:
        return " or ".join(words(k) for k in kind["anyOf"])
    if "const" in kind:
        return repr(kind["const"])
    if kind.get("type") == "array":
        items = kind["items"]
        plural = f"of {', '.join(str(v) for v in items['enum'])}" if "enum" in items else _noun(items, plural=True)
        fixed = "minItems" in kind and kind.get("minItems") == kind.get("maxItems")
        return f"{kind['minItems']} {plural}" if fixed else f"a list {plural}" if "enum" in items else \
            f"a list of {plural}"
    return _noun(kind)
