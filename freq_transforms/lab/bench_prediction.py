"""Seconds per case of a bundle's prediction, torch beside onnxruntime: one model, test-time mirroring, a fold
ensemble and both (``python -m freq_transforms bench --only prediction``).

Each setting runs the bundle's own preprocessing once per case and then its inferer (sliding window in patch mode)
averaging as its ``inferer`` does (:class:`freq_transforms.networks.AveragingInferer`) in torch, and as exported by
:func:`freq_transforms.bundle.onnx_inference.export_prediction` in onnxruntime; the labels of both are compared.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

import torch
from tqdm import tqdm

from .phantoms import write_phantom_dataset

__all__ = ["prediction_times", "prediction_report"]

SETTINGS = {"one model": (False, False), "mirroring (tta)": (True, False), "ensemble": (False, True),
            "ensemble + mirroring": (True, True)}


def _parser(bundle: Path, files: Sequence[str], overrides: Dict):
    from ..bundle.configs import bundle_parser

    return bundle_parser(bundle, [bundle / "configs" / f for f in files], overrides)


def _seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def prediction_times(bundle_root: Path, task: str, members: int = 5, repeats: int = 1,
                     settings: Sequence[str] = tuple(SETTINGS)) -> Dict[str, Dict[str, float]]:
    """Per setting: seconds per case in torch and onnxruntime, the share of voxels whose labels differ, and the
    number of ``members`` averaged. The ensemble is the bundle's own members (``models/fold*/model.pt``) where it
    ships them, else ``members`` copies of ``models/model.pt`` (a K-fold ensemble costs the same)."""
    from ..networks.checkpoint import load_weights
    from ..bundle.onnx_inference import export_prediction

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bundle"
        shutil.copytree(bundle_root, bundle, ignore=shutil.ignore_patterns("*.onnx", "previous"))
        shipped = sorted((bundle / "models").glob("fold*/model.pt"))
        for k in range(0 if shipped else members):
            (bundle / "models" / f"fold{k}").mkdir(parents=True)
            shutil.copy(bundle / "models" / "model.pt", bundle / "models" / f"fold{k}" / "model.pt")
        members = len(shipped) or members
        data = write_phantom_dataset(task, Path(tmp) / "data", n=1, seed=0, progress=False)
        image = str(next((data / "imagesTr").iterdir()))
        for name in tqdm(settings, desc=f"prediction {bundle_root.name}", unit="setting"):
            tta, ensemble = SETTINGS[name]
            keys = {"tta": tta, "ensemble": ensemble}
            export_prediction(bundle, tta, ensemble)
            torch_parser = _parser(bundle, ["inference.json"], keys)
            load_weights(torch_parser.get_parsed_content("network"), bundle / "models" / "model.pt")
            onnx_parser = _parser(bundle, ["inference.json", "inference_onnx.json"], keys)
            x = torch_parser.get_parsed_content("preprocessing")({"image": image})["image"][None]
            runs = {"torch": torch_parser, "onnxruntime": onnx_parser}  # each runs its own inferer and network
            labels, row = {}, {}
            for runtime, parser in runs.items():
                inferer, network = parser.get_parsed_content("inferer"), parser.get_parsed_content("network").eval()
                with torch.no_grad():
                    labels[runtime] = inferer(x, network).argmax(1)
                    row[runtime] = _seconds(lambda: inferer(x, network), repeats)
            row["labels_differ"] = float((labels["torch"] != labels["onnxruntime"]).float().mean())
            result[name] = {**row, "members": members if ensemble else 1}
    return result


def prediction_report(bundles: Dict[str, Path], repeats: int = 1, members: int = 5) -> List[str]:
    """Markdown rows of :func:`prediction_times` for ``{task: bundle_root}``."""
    lines = ["", "### Prediction per case, torch against onnxruntime (CPU; a bundle's own ensemble members, "
             f"else {members} copies of its model)", "",
             "| bundle | prediction | members | torch s / case | onnxruntime s / case | ratio | labels differ |",
             "|---|---|---|---|---|---|---|"]
    for task, root in bundles.items():
        for name, row in prediction_times(root, task, members, repeats).items():
            lines.append(f"| {root.name} | {name} | {row['members']} | {row['torch']:.2f} | {row['onnxruntime']:.2f} "
                         f"| {row['onnxruntime'] / row['torch']:.2f} | {100 * row['labels_differ']:.4f} % |")
    return lines
