"""Where a bundle's configs keep the data lists, the epoch budget and the weights: found by following the
configs' references from the trainer's and the evaluators' data loaders to their datasets, with no bundle-specific
key names.

A zoo trainer is a component with ``train_data_loader`` (``SupervisedTrainer``), an evaluator one with
``val_data_loader`` (``SupervisedEvaluator``); their loaders have a ``dataset`` and the dataset a ``data``. The
trial overrides exactly those ``data`` ids with its own lists, so the bundle's transforms, loss, checkpointing and
post-processing stay its own. MONAI's ``ConfigParser`` resolves references but has no "where does this id lead"
query, hence the walk here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..errors import DataError, one_line
from ..bundle.configs import Bundle

__all__ = ["TrialError", "BundleWiring", "wire_bundle", "bundle_cases", "resolved_list", "keys_of"]

Item = Dict[str, Any]


class TrialError(DataError):
    """A bundle or dataset the trial cannot run; the message, one line, says why."""


@dataclass
class BundleWiring:
    """The ids the trial overrides in one bundle (``train_data``: ``"train#dataset#data"`` in the zoo spleen
    bundle, ``"train_dataset#data"`` in the segmentation template) and the configs they live in."""

    bundle: Bundle
    train_configs: List[Path]
    inference_configs: List[Path]
    train_data: str
    val_data: str
    infer_data: str
    max_epochs: str
    test_configs: Optional[List[Path]] = None
    test_data: Optional[str] = None


def _components(config: Any, prefix: str = "") -> Iterator[Tuple[str, Dict[str, Any]]]:
    """Every dict component at any depth of a config, with its id."""
    if isinstance(config, dict):
        if "_target_" in config:
            yield prefix, config
        for key, value in config.items():
            yield from _components(value, f"{prefix}#{key}" if prefix else str(key))
    elif isinstance(config, list):
        for index, value in enumerate(config):
            yield from _components(value, f"{prefix}#{index}" if prefix else str(index))


def _follow(config: Dict[str, Any], value: Any, where: str) -> Tuple[str, Dict[str, Any]]:
    """The id and component that ``value`` (``"@id"``, ``"$@id"`` or the component itself, found at ``where``)
    stands for."""
    if isinstance(value, dict):
        return where, value
    if isinstance(value, str) and value.lstrip("$").startswith("@"):
        target = value.lstrip("$")[1:]
        if all(c.isalnum() or c in "_#" for c in target):
            node: Any = config
            for part in target.split("#"):
                node = node[int(part)] if isinstance(node, list) else node.get(part) if isinstance(node, dict) else None
            if node is not None:
                return _follow(config, node, target)
    raise TrialError(f"{where} is {value!r}, which the trial cannot follow to a component")


def _data_id(config: Dict[str, Any], engine_id: str, engine: Dict[str, Any], loader_key: str) -> str:
    loader_id, loader = _follow(config, engine.get(loader_key), f"{engine_id}#{loader_key}")
    dataset_id, dataset = _follow(config, loader.get("dataset"), f"{loader_id}#dataset")
    if "data" not in dataset:
        raise TrialError(f"the dataset {dataset_id} has no data key for the trial to set")
    return f"{dataset_id}#data"


def _engine(config: Dict[str, Any], loader_key: str, config_file: Path, exclude: str = "") -> Tuple[str, Dict]:
    """The one top-level engine with ``loader_key`` (a trainer's ``train_data_loader``, an evaluator's
    ``val_data_loader``) in ``config``, skipping ``exclude`` and its parts."""
    found = [(i, c) for i, c in _components(config) if loader_key in c and not (exclude and i.startswith(exclude))]
    if not found:
        raise TrialError(f"{config_file} has no component with {loader_key} (a SupervisedTrainer or "
                         "SupervisedEvaluator): the trial cannot hand it data")
    return min(found, key=lambda pair: pair[0].count("#"))


def wire_bundle(bundle: Bundle) -> BundleWiring:
    """Find the data, epoch and config ids of ``bundle`` (JSON or YAML configs)."""
    train, inference = bundle.config("train"), bundle.config("inference")
    if train is None or inference is None:
        raise TrialError(f"{bundle.root / 'configs'} needs a train and an inference config (.json or .yaml) for a "
                         "trial")
    train_group = bundle.group(train, train)
    config = bundle.parser(train_group).get()
    trainer_id, trainer = _engine(config, "train_data_loader", train)
    if "max_epochs" not in trainer:
        raise TrialError(f"the trainer {trainer_id} of {train} has no max_epochs")
    evaluator_id, evaluator = _engine(config, "val_data_loader", train, exclude=trainer_id)
    infer_group = bundle.group(train, inference)
    infer_config = bundle.parser(infer_group).get()
    infer_id, infer_engine = _engine(infer_config, "val_data_loader", inference)
    wiring = BundleWiring(bundle=bundle, train_configs=train_group, inference_configs=infer_group,
                          train_data=_data_id(config, trainer_id, trainer, "train_data_loader"),
                          val_data=_data_id(config, evaluator_id, evaluator, "val_data_loader"),
                          infer_data=_data_id(infer_config, infer_id, infer_engine, "val_data_loader"),
                          max_epochs=f"{trainer_id}#max_epochs")
    evaluate = next((c for c in (bundle.config("evaluate"), bundle.config("test")) if c), None)
    if evaluate is not None:  # the bundle's own test list, where it keeps cases its training lists leave out
        group = bundle.group(train, evaluate)
        try:
            merged = bundle.parser(group).get()
            engine_id, engine = _engine(merged, "val_data_loader", evaluate)
            wiring.test_configs, wiring.test_data = group, _data_id(merged, engine_id, engine, "val_data_loader")
        except TrialError:
            pass
    return wiring


def resolved_list(parser: Any, config_id: str) -> List[Item]:
    try:
        items = parser.get_parsed_content(config_id, instantiate=True)
    except Exception as err:  # noqa: BLE001  (the bundle's own expressions raise what they raise)
        raise TrialError(f"the bundle could not list its cases at {config_id} ({one_line(err)})") from None
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, dict) for i in items):
        raise TrialError(f"{config_id} is not a list of dicts, which the trial needs to split")
    return [dict(i) for i in items]


def keys_of(overrides: Dict[str, Any], parser: Any) -> Dict[str, Any]:
    """The overrides that name keys of the parsed configs (a training budget key means nothing to inference, an
    inference loader's key nothing to training)."""
    config = parser.get()
    return {k: v for k, v in overrides.items() if k.split("#")[0] in config}


def bundle_cases(wiring: BundleWiring, dataset_dir: Path, scratch: Path,
                 overrides: Optional[Dict[str, Any]] = None) -> Tuple[List[Item], List[str]]:
    """Every case the bundle's own configs list from ``dataset_dir`` (its training, validation and, where it has
    an evaluate/test config, test lists together, each case once), in the bundle's own keys; and the keys its
    inference config reads (the images).

    ``scratch``: where the bundle may write while listing (``bundle_root`` there); ``overrides``: the user's, of
    which those naming keys of the train config apply (e.g. one that turns off the bundle's data check)."""
    where = {"dataset_dir": str(dataset_dir), "bundle_root": str(scratch)}
    parser = wiring.bundle.parser(wiring.train_configs, {
        **keys_of(overrides or {}, wiring.bundle.parser(wiring.train_configs)), **where})
    if "dataset_dir" not in parser.get():
        raise TrialError(f"{wiring.train_configs[0]} has no dataset_dir key to point at the trial's data")
    lists = [resolved_list(parser, wiring.train_data), resolved_list(parser, wiring.val_data)]
    if wiring.test_configs and wiring.test_data:
        test_parser = wiring.bundle.parser(wiring.test_configs, {
            **keys_of(overrides or {}, wiring.bundle.parser(wiring.test_configs)), **where})
        lists.append(_safe_list(test_parser, wiring.test_data))
    seen, cases = set(), []
    for items in lists:
        for item in items:
            key = tuple(sorted((k, str(v)) for k, v in item.items()))
            if key not in seen:
                seen.add(key)
                cases.append(item)
    infer_parser = wiring.bundle.parser(wiring.inference_configs, where)
    infer_keys = sorted(set(k for item in _safe_list(infer_parser, wiring.infer_data) for k in item))
    return cases, [k for k in infer_keys if all(k in c for c in cases)] or _image_keys(cases)


def _safe_list(parser: Any, config_id: str) -> List[Item]:
    try:
        return resolved_list(parser, config_id)
    except TrialError:
        return []  # an inference list of another folder layout: the image keys are guessed from the cases


def _image_keys(cases: List[Item]) -> List[str]:
    return [k for k in ("image", "img") if cases and k in cases[0]][:1] or [sorted(cases[0])[0]]
