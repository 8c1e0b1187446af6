"""One run of a trial: train a copy of the bundle on the trial's lists, predict the validation and test cases
through its own inference config, and score them.

Each run works in its own folder (``O/runs/<name>/``): a copy of the bundle's ``configs/`` and ``scripts/``, the
overlay for ``early``/``late``, and ``configs/trial.json``, listed last, which sets the data ids the bundle's
configs lead to (:mod:`.wiring`) and the seed. ``python -m monai.bundle run`` then trains as the bundle trains,
selecting its weights on validation with its own checkpointing.
"""

from __future__ import annotations

import json
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..atomic import atomic_write_text
from ..bundle.input_size import ids_with_key
from ..bundle.overlay import OVERLAY_FILE, write_overlay
from ..bundle.configs import bundle_config
from .plan import Run
from .scoring import case_stem, score_case
from .wiring import BundleWiring, Item, TrialError, keys_of

__all__ = ["RESULT_FILE", "TrialCases", "run_and_score", "train_run", "predict_and_score", "seeded_initialize",
           "fusion_settings"]

RESULT_FILE = "result.json"
TRIAL_CONFIG = "configs/trial.json"
INFER_CONFIG = "configs/trial_inference.json"
SEED_CALL = re.compile(r"set_determinism\(\s*seed\s*=\s*[^,)]+")
BUNDLE_PARTS = ("configs", "scripts")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # torch's intra-op threads follow them
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class TrialCases:
    """The lists one run hands its bundle, in the bundle's own keys, and which keys are images and label."""

    def __init__(self, train: List[Item], val: List[Item], test: List[Item], image_keys: List[str],
                 label_key: str) -> None:
        self.train, self.val, self.test = train, val, test
        self.image_keys, self.label_key = image_keys, label_key


def seeded_initialize(initialize: Any, seed: int) -> List[Any]:
    """The bundle's ``initialize`` list with every ``set_determinism(seed=...)`` set to ``seed``, or with one
    added first where it has none: the bundle keeps its own initialisation, the seed is the trial's."""
    steps = list(initialize) if isinstance(initialize, list) else ([] if initialize is None else [initialize])
    seeded = [SEED_CALL.sub(f"set_determinism(seed={seed}", s) if isinstance(s, str) else s for s in steps]
    if seeded == steps or not any(isinstance(s, str) and "set_determinism" in s for s in steps):
        seeded = [f"$monai.utils.set_determinism(seed={seed})"] + seeded
    return seeded


def fusion_settings(parser: Any, fusion: str) -> Dict[str, Any]:
    """For a bundle whose ``network_def`` is already FD (this project's), the override that sets its fusion
    (its own key where ``network_def`` reads one, ``"fusion": "@fusion"``); ``{}`` for a plain network, which the
    overlay wraps instead."""
    network_def = parser.get().get("network_def")
    if not isinstance(network_def, dict) or "fusion" not in network_def:
        return {}
    value = network_def["fusion"]
    if isinstance(value, str) and value.startswith("@") and "#" not in value:
        return {value[1:]: fusion}
    return {"network_def#fusion": fusion}


def _copy_bundle(root: Path, target: Path) -> None:
    """The bundle's configs and scripts, fresh; the rest of ``target`` (``models/`` with a ``resume.pt`` a killed
    attempt left) is kept, so a run started again continues where that attempt's last epoch ended."""
    for part in BUNDLE_PARTS:
        shutil.rmtree(target / part, ignore_errors=True)
        if (root / part).is_dir():
            shutil.copytree(root / part, target / part, ignore=shutil.ignore_patterns("__pycache__", "fd_overlay.json",
                                                                                     "trial*.json"))


def run_and_score(wiring: BundleWiring, run: Run, cases: TrialCases, run_dir: Path, dataset_dir: Path, classes: int,
                  overrides: Dict[str, Any], threads: Optional[int] = None) -> Dict[str, Any]:
    """Train, predict and score one run in ``run_dir``; its ``result.json`` (written last) marks it done."""
    start = time.time()
    train_seconds = train_run(wiring, run, cases, run_dir, dataset_dir, overrides, threads=threads)
    scores = predict_and_score(wiring, run, cases, run_dir, classes, overrides, since=start, threads=threads)
    result = {"n": run.n, "seed": run.seed, "fusion": run.fusion, "fold": run.fold, "train_seconds": train_seconds,
              **scores, "train_cases": [str(c[cases.image_keys[0]]) for c in cases.train]}
    atomic_write_text(run_dir / RESULT_FILE, json.dumps(result, indent=1))
    shutil.rmtree(run_dir / "inputs", ignore_errors=True)
    return result


def _config_files(bundle: Path, configs: List[Path], extra: List[str]) -> str:
    names = [str(bundle / c.relative_to(c.parents[1])) for c in configs] + [str(bundle / e) for e in extra]
    return json.dumps(names)


def _die_with_parent() -> None:
    """Run in the bundle's process before it starts: on Linux it is killed when the run's process dies (a Ray
    worker killed mid-run leaves no orphan training beside the retry that resumes it)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _thread_env(threads: Optional[int]) -> Dict[str, str]:
    return {} if threads is None else {name: str(threads) for name in THREAD_VARIABLES}


def _monai_run(bundle: Path, files: str, log: Path, cwd: Path, threads: Optional[int] = None) -> None:
    meta = bundle_config(bundle, "metadata")
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", files, "--bundle_root", str(bundle)]
    cmd += ["--meta_file", str(meta)] if meta is not None else []
    cwd.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        handle.write(" ".join(cmd) + "\n")
        handle.flush()
        done = subprocess.run(cmd, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                              env={**os.environ, **_thread_env(threads), "PYTHONPATH": os.pathsep.join(
                                  [str(bundle), os.environ.get("PYTHONPATH", "")])})
    if done.returncode != 0:
        lines = [l for l in log.read_text().splitlines() if l.strip()]
        raise TrialError(f"the bundle stopped ({lines[-1] if lines else 'no output'}); its log: {log}")


def train_run(wiring: BundleWiring, run: Run, cases: TrialCases, run_dir: Path, dataset_dir: Path,
              overrides: Dict[str, Any], max_epochs: Optional[int] = None, threads: Optional[int] = None) -> float:
    """Train ``run`` in ``run_dir/bundle``; return the seconds it took. ``max_epochs`` overrides the trainer's
    budget (the time estimate trains one epoch); ``threads``: the bundle's CPU threads (its environment's
    otherwise)."""
    bundle = run_dir / "bundle"
    _copy_bundle(wiring.bundle.root, bundle)
    native = fusion_settings(wiring.bundle.parser(wiring.train_configs, root=bundle), run.fusion)
    extra = []
    if run.fusion != "none" and not native:
        write_overlay(bundle, fusion=run.fusion, force=True)
        extra.append(OVERLAY_FILE)
    parser = wiring.bundle.parser(wiring.train_configs + [bundle / e for e in extra], root=bundle)
    trial = {**keys_of(overrides, parser), **native, "dataset_dir": str(dataset_dir), wiring.train_data: cases.train,
             wiring.val_data: cases.val, "initialize": seeded_initialize(parser.get().get("initialize"), run.seed)}
    if max_epochs is not None:
        trial[wiring.max_epochs] = max_epochs
    atomic_write_text(bundle / TRIAL_CONFIG, json.dumps(trial, indent=1))
    start = time.perf_counter()
    _monai_run(bundle, _config_files(bundle, wiring.train_configs, extra + [TRIAL_CONFIG]), run_dir / "train.log",
               bundle, threads)
    return time.perf_counter() - start


def _weights_for_inference(wiring: BundleWiring, bundle: Path, extra: List[str], since: float) -> None:
    """Put the weights training selected where the inference config loads them (the zoo template saves its best
    weights as ``model_key_metric=<value>.pt`` beside the epoch checkpoints, and loads ``models/model.pt``)."""
    parser = wiring.bundle.parser(wiring.inference_configs + [bundle / e for e in extra], root=bundle)
    paths = []
    for config_id in ids_with_key(parser.get(), "load_path"):
        try:
            paths.append(Path(str(parser.get_parsed_content(config_id, instantiate=False))))
        except Exception:  # noqa: BLE001
            continue
    if not paths:
        raise TrialError(f"{wiring.inference_configs[-1].name} loads no weights (no load_path): nothing to predict with")
    target = paths[0] if paths[0].is_absolute() else bundle / paths[0]
    if target.is_file() and target.stat().st_mtime >= since:
        return
    best = sorted((p for p in bundle.rglob("*key_metric*.pt") if p.stat().st_mtime >= since),  # not a failed try's
                  key=lambda p: _metric_of(p.name))
    if not best:
        raise TrialError(f"training wrote no weights where {wiring.inference_configs[-1].name} loads them ({target}) "
                         "and no key-metric checkpoint")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(best[-1], target)


def _metric_of(name: str) -> float:
    found = re.search(r"key_metric=(-?[0-9.]+?)(\.pt)?$", name)
    return float(found.group(1)) if found else float("-inf")


def predict_and_score(wiring: BundleWiring, run: Run, cases: TrialCases, run_dir: Path, classes: int,
                      overrides: Dict[str, Any], since: float, threads: Optional[int] = None) -> Dict[str, Any]:
    """Predict the validation and test cases through the bundle's inference config; score each against its
    label. Returns ``{"val": {case: scores}, "test": {...}, "infer_seconds": s}``."""
    bundle = run_dir / "bundle"
    extra = [OVERLAY_FILE] if (bundle / OVERLAY_FILE).is_file() else []
    parser = wiring.bundle.parser(wiring.inference_configs, root=bundle)
    native = fusion_settings(parser, run.fusion)
    _weights_for_inference(wiring, bundle, extra, since)
    inputs = run_dir / "inputs" / "imagesTs"  # MSD layout: bundles that glob dataset_dir/imagesTs find them too
    shutil.rmtree(run_dir / "inputs", ignore_errors=True)
    inputs.mkdir(parents=True)
    by_stem: Dict[str, tuple] = {}
    items = []
    for part, part_cases in (("val", cases.val), ("test", cases.test)):
        for case in part_cases:
            image = Path(str(case[cases.image_keys[0]]))
            link = inputs / image.name
            if not link.exists():
                link.symlink_to(image.resolve())
            by_stem[case_stem(image.name)] = (part, case)
            items.append({key: str(inputs / Path(str(case[key])).name) if key == cases.image_keys[0] else case[key]
                          for key in cases.image_keys})
    atomic_write_text(bundle / INFER_CONFIG, json.dumps({**keys_of(overrides, parser), **native,
                                                         "dataset_dir": str(run_dir / "inputs"),
                                                         wiring.infer_data: items}, indent=1))
    start = time.time()
    _monai_run(bundle, _config_files(bundle, wiring.inference_configs, extra + [INFER_CONFIG]),
               run_dir / "inference.log", run_dir / "inference_cwd", threads)
    seconds = time.time() - start
    return {**_score_predictions(run_dir, by_stem, cases.label_key, classes, start), "infer_seconds": seconds}


def _score_predictions(run_dir: Path, by_stem: Dict[str, tuple], label_key: str, classes: int,
                       since: float) -> Dict[str, Any]:
    written = [p for p in run_dir.rglob("*") if p.is_file() and re.search(r"\.nii(\.gz)?$", p.name)
               and p.stat().st_mtime >= since - 1 and "inputs" not in p.relative_to(run_dir).parts]
    scores: Dict[str, Dict[str, Any]] = {"val": {}, "test": {}}
    for prediction in written:
        stems = [s for s in by_stem if case_stem(prediction.name).startswith(s)]
        if stems:
            stem = max(stems, key=len)
            part, case = by_stem[stem]
            scores[part][stem] = score_case(prediction, Path(str(case[label_key])), classes)
    missing = [s for s, (part, _) in by_stem.items() if s not in scores[part]]
    if missing:
        raise TrialError(f"the bundle's inference wrote no prediction for {len(missing)} case(s), e.g. {missing[0]}; "
                         f"its log: {run_dir / 'inference.log'}")
    return scores
