"""The model commands of ``python -m freq_transforms``: the overlay, building and releasing bundles, exporting and
reading models. One function each, its docstring the ``--help`` text; each imports what it runs when it runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

__all__ = ["MODEL_COMMANDS"]


def overlay(bundle_root: str, fusion: str = "early", arch: str = "v2", cutoff: float = 0.1, mask: str = "box",
            features: int = 8, fuse: str = "concat", force: bool = False) -> str:
    """Put FD on a model-zoo segmentation bundle: write <bundle_root>/configs/fd_overlay.json, print how to run it.

    The overlaid network is built and run once at the bundle's own input size first; a network FD cannot wrap
    stops with one line saying why, and nothing is written.

    Args:
        bundle_root: the bundle folder (configs/train.json or train.yaml with a network_def).
        fusion: early (FD before the network; v2 starts as exactly the bundle's network) or late.
        arch: v2 (FD at the network's cost, starting as it) or paper (the released code's layers).
        cutoff: fraction of each axis's spectrum in the low band (the paper's 0.1).
        mask: low-pass mask: box, ball or gaussian.
        features: width of late v2's low-band head, or of the paper layout's branch convs.
        fuse: paper layout only: concat, add or spectral.
        force: overwrite an overlay of other settings that sits beside trained weights in models/.
    """
    from ..bundle.overlay import OVERLAY_FILE, write_overlay

    commands = write_overlay(bundle_root, fusion, arch, float(cutoff), mask, int(features), fuse, force)
    lines = [f"wrote {Path(bundle_root) / OVERLAY_FILE}; from {bundle_root}:"]
    lines += [f"  {name}: {command}" for name, command in commands.items()]
    lines.append(f"without FD: the same commands without {OVERLAY_FILE}, with another bundle_root to compare")
    return "\n".join(lines)


def bundles_build(check: bool = False, source: str = "bundle_source", out: str = "bundles") -> str:
    """Write bundles/<name>/ for every bundle_source/tasks/<name>.json (run from the repository root).

    Args:
        check: only report the files that differ from what the source produces (exit 1 if any).
        source: the source folder (shared configs, README template, one task file per bundle).
        out: the folder of the bundles.
    """
    from ..bundle.build import build_bundles

    changed = build_bundles(Path(source), Path(out), check=bool(check))
    if check and changed:
        print("out of date (run python -m freq_transforms bundles build):\n  " + "\n  ".join(changed))
        sys.exit(1)
    return f"{len(changed)} file(s) {'differ' if check else 'written'}"


def bundles_list() -> str:
    """Print the bundles installed with the package: name, version, the weights each ships, and its folder
    (what --bundle_root or monai.bundle.load's bundle_dir takes)."""
    from ..bundle.paths import installed_bundles, shipped_weights

    lines = [f"bundles in {installed_bundles()}:"]
    for folder in sorted(p.parent.parent for p in installed_bundles().glob("*/configs/metadata.json")):
        version = json.loads((folder / "configs" / "metadata.json").read_text()).get("version", "?")
        weights = shipped_weights(folder)
        said = ", ".join(str(w.relative_to(folder / "models")) for w in weights) if weights else "no weights"
        lines.append(f"  {folder.name} {version} ({said}): {folder}")
    return "\n".join(lines)


def onnx(bundle_root: str, tta: Optional[bool] = None, ensemble: Optional[bool] = None, out: Optional[str] = None,
         tta_axes: Optional[Sequence[int]] = None) -> str:
    """Export the bundle's prediction to models/model.onnx, which configs/inference_onnx.json runs in onnxruntime.

    Args:
        bundle_root: this project's bundle with models/model.pt (and models/fold*/model.pt for --ensemble true).
        tta: average over the input mirrored along every combination of tta_axes (nnU-Net's test-time mirroring);
            default: the bundle's tta.
        ensemble: average the fold models models/fold*/model.pt; default: the bundle's ensemble.
        out: the file to write (default: models/model.onnx).
        tta_axes: spatial axes to mirror, e.g. 0 or 0,1,2 (default: the bundle's tta_axes).
    """
    from ..bundle.checks import flag
    from ..bundle.onnx_inference import export_prediction

    axes = None if tta_axes is None else [int(a) for a in (tta_axes if isinstance(tta_axes, (list, tuple))
                                                           else str(tta_axes).split(","))]
    tta, ensemble = (None if value is None else flag(value, key) for key, value in (("tta", tta), ("ensemble", ensemble)))
    return str(export_prediction(Path(bundle_root), tta, ensemble, Path(out) if out else None, axes))


def release(bundles: str = "bundles", out: str = "dist", base_url: Optional[str] = None,
            weights_url: Optional[str] = None) -> Dict[str, Dict[str, str]]:
    """Write zoo-style archives <out>/<name>_v<version>.zip and <out>/model_info.json.

    Args:
        bundles: folder of bundles (its model_info.json records the released versions).
        out: output folder (an existing model_info.json is merged, older versions stay listed).
        base_url: where the zips will be published, e.g. a GitHub release's download URL.
        weights_url: host models/ apart (a large_files.yml is shipped instead), e.g. a Hugging Face repo.
    """
    from ..bundle.release import release as make_release

    return make_release(bundles, out, base_url, weights_url)


def recipe(weights: str, into: Optional[str] = None) -> str:
    """Print the recipe a model was trained with (model.pt, TorchScript or ONNX); or stamp it into an export.

    Args:
        weights: a weights file: a bundle's models/model.pt, a TorchScript export (.ts) or an ONNX file (.onnx).
        into: an exported model (.onnx, or .ts) to write the recipe into (ONNX metadata_props
            freq_transforms_recipe, TorchScript extra file recipe.json), e.g. after monai.bundle onnx_export.
    """
    from ..recipe import read_recipe, write_recipe_into

    found = read_recipe(weights)
    if found is None:
        raise ValueError(f"{weights} carries no freq_transforms recipe (weights saved by an older version, or not "
                         "by an FD network)")
    if into:
        return f"wrote the recipe of {weights} into {write_recipe_into(into, found)}"
    return json.dumps(found, indent=2, sort_keys=True)


MODEL_COMMANDS: Dict[str, Callable] = {"overlay": overlay, "recipe": recipe, "release": release, "onnx": onnx,
                                       "bundles build": bundles_build, "bundles list": bundles_list}
