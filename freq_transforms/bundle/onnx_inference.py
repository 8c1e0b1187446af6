"""CPU inference in onnxruntime: export a bundle's prediction (one model, or the fold ensemble and test-time
mirroring) to ``models/model.onnx``, and run that file as a network in ``configs/inference_onnx.json``.

``monai.bundle onnx_export`` exports one ``network_def`` with one checkpoint; the prediction a bundle's evaluator
runs (:func:`freq_transforms.networks.averaged_network`) may hold several, so :func:`export_prediction` builds it
from the bundle's inference config and exports it with MONAI's ``convert_to_onnx``. MONAI has no onnxruntime
counterpart of its TensorRT wrapper for inference configs: :class:`OnnxRuntimeNetwork` is that, and it refuses a
file whose averaging differs from what the config asks (``tta``, ``ensemble``) in one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import torch
from torch import nn

from ..errors import DataError
from ..networks.averaging import ensemble_members, weights_file

__all__ = ["PREDICTION_KEY", "OnnxRuntimeNetwork", "export_prediction", "prediction_input_size"]

PREDICTION_KEY = "freq_transforms_prediction"  # ONNX metadata_props entry: how the exported prediction averages


def prediction_input_size(parser: Any) -> Sequence[int]:
    """The spatial size the bundle's network sees: the sliding window's ``roi_size``, else ``spatial_size``."""
    inferer = parser.get_parsed_content("inferer")
    window = getattr(inferer, "inferer", inferer)  # inside the AveragingInferer (bundles from before: itself)
    roi_size = getattr(window, "roi_size", None)
    size = roi_size if roi_size is not None else parser.get_parsed_content("spatial_size")
    return [int(s) for s in size]


def export_prediction(bundle_root: Path, tta: Optional[bool] = None, ensemble: Optional[bool] = None,
                      out: Optional[Path] = None, tta_axes: Optional[Sequence[int]] = None) -> Path:
    """Export the prediction of the bundle at ``bundle_root`` (its inference config, ``models/model.pt`` or, with
    ``ensemble``, ``models/fold*/model.pt``; with ``tta`` mirrored along ``tta_axes``, default the config's) to
    ``out`` (default ``models/model.onnx``); ``tta`` and ``ensemble`` default to the config's, so that the file is
    what ``inference_onnx.json`` expects unless told otherwise,
    for the input size its inferer runs the network at, batch size free; the weights' recipe and the averaging
    go into the file's metadata. Nothing is written when a step fails."""
    from monai.networks.utils import convert_to_onnx

    from ..networks.checkpoint import load_weights
    from ..networks.averaging import averaged_network
    from .configs import bundle_parser
    from ..recipe import ONNX_KEY, as_json_values, unwrap, write_onnx_metadata

    config = bundle_root / "configs" / "inference.json"
    if not config.is_file():
        raise DataError(f"{config} does not exist: give the folder of one of this project's bundles")
    parser = bundle_parser(bundle_root, [config])
    network = parser.get_parsed_content("network_def").to("cpu")
    tta, ensemble = (_configured(parser, key) if value is None else bool(value)
                     for key, value in (("tta", tta), ("ensemble", ensemble)))
    if ensemble:  # the file will say it averages the members: refuse a models/ without them (no lone-model fallback)
        ensemble_members(str(bundle_root / "models"))
    record = load_weights(network, weights_file(str(bundle_root / "models"), ensemble), "cpu") or {}
    if tta_axes is None:  # the bundle's; a bundle from before the key mirrors every axis, as the key's default
        tta_axes = parser.get_parsed_content("tta_axes") if "tta_axes" in parser.get() else (0, 1, 2)
    axes = [int(a) for a in tta_axes]
    prediction = averaged_network(network, tta, ensemble, str(bundle_root / "models"), "cpu", axes).eval()
    size = prediction_input_size(parser)
    in_channels = int(parser.get_parsed_content("in_channels"))
    target = out or bundle_root / "models" / "model.onnx"
    partial = target.with_name(target.name + ".partial")
    output = "log_probabilities" if (tta or ensemble) else "logits"
    with torch.no_grad():
        # the TorchScript-based exporter: it keeps the batch axis free as dynamic_axes asks (torch's dynamo exporter
        # warns that it may not, and fixed the output's batch size to 1 in a test)
        convert_to_onnx(prediction, [torch.rand(1, in_channels, *size)], input_names=["image"], output_names=[output],
                        dynamic_axes={"image": {0: "batch"}, output: {0: "batch"}}, filename=str(partial),
                        dynamo=False)
    members = len(getattr(prediction, "members", [network]))
    averaging = {"tta": bool(tta), "tta_axes": axes if tta else [], "ensemble": bool(ensemble), "members": members,
                 "input_size": size, "arch": getattr(unwrap(network), "arch", None)}
    write_onnx_metadata(partial, {ONNX_KEY: json.dumps(as_json_values(record), sort_keys=True),
                                  PREDICTION_KEY: json.dumps(averaging)})
    partial.replace(target)
    return target


def _configured(parser: Any, key: str) -> bool:
    """The inference config's ``tta`` or ``ensemble`` (read through its flags); off in a bundle from before it."""
    if key not in parser.get():
        return False
    from .checks import flag

    return flag(parser.get_parsed_content(key), key)


def _setting(value: Any) -> Any:
    """A recorded or configured averaging setting, comparable: a list of axes, or a bool."""
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else bool(value)


def _word(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value).lower()


class OnnxRuntimeNetwork(nn.Module):
    """An exported prediction run by onnxruntime (CPU), called as a torch network: ``(B, C, *spatial)`` in,
    ``(B, K, *spatial)`` out, on the input's device.

    Args:
        path: the ``.onnx`` file (:func:`export_prediction`).
        expect: averaging the config asks for (``{"tta": True, "tta_axes": [0, 1], "ensemble": False}``); a file
            exported otherwise stops with one line saying how to export it again.
        providers: onnxruntime execution providers (default: CPU).
    """

    def __init__(self, path: str, expect: Optional[Mapping[str, bool]] = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        super().__init__()
        import onnxruntime

        if not Path(path).is_file():
            raise DataError(f"{path} does not exist: export it with python -m freq_transforms onnx <bundle_root>")
        self.session = onnxruntime.InferenceSession(str(path), providers=list(providers))
        self.input_name = self.session.get_inputs()[0].name
        self.prediction: Dict[str, Any] = json.loads(
            self.session.get_modelmeta().custom_metadata_map.get(PREDICTION_KEY, "{}"))
        expect = dict(expect or {})
        if not expect.get("tta", True):  # without mirroring its axes do not matter
            expect.pop("tta_axes", None)
        for key, wanted in expect.items():
            exported, wanted = _setting(self.prediction.get(key)), _setting(wanted)
            if exported != wanted:
                raise DataError(f"{path} was exported with {key}={exported}, the config asks {key}={wanted}: export "
                                f"again with python -m freq_transforms onnx <bundle_root> --{key} {_word(wanted)}, or "
                                f"pass --{key} {_word(exported)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).numpy()
        out = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(out).to(x.device)
