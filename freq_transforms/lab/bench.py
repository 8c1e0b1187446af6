"""Side-by-side performance measurements: FD (early/late, v2 and paper layouts) against the plain backbone.

``python -m freq_transforms bench`` prints medians over repeats and ratios to ``fusion=none``, all modes
measured in one run on the same input (repeats interleaved across modes): train-step time, activation
memory, FLOPs, inference time per task size, the low/high split (separable box projection, rfftn, fftn),
and data loading per epoch with and without caching. The networks are called through the public API,
so the split is included in every FD time.
"""

from __future__ import annotations

import math
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from ..fourier import disentangle, low_pass_mask
from ..networks import FrequencyDisentangledNet, FrequencySplit

# (label, arch, fusion); "none" is the plain backbone, the same in both layouts
MODES = [("none", "v2", "none"), ("v2 early", "v2", "early"), ("v2 late", "v2", "late"),
         ("paper early", "paper", "early"), ("paper late", "paper", "late")]
LABELS = [m[0] for m in MODES]
# issue 12's cost targets for v2, as ratios to the plain backbone
TIME_TARGETS = {"v2 early": 1.05, "v2 late": 1.10}
MEMORY_TARGETS = {"v2 early": 1.10, "v2 late": 1.10}

__all__ = ["time_call", "train_step_times", "activation_memory_mb", "forward_gflops", "inference_times",
           "fft_split_times", "loading_times", "ct_scale_inference", "ct_scale_report", "run_benchmarks"]

TASK_SIZES = {"hippocampus": (64, 64, 48), "red_nucleus/dentate/spleen/heart": (160, 160, 128)}


def time_call(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


GROUPS = [["none", "v2 early", "v2 late"], ["none", "paper early", "paper late"]]


def _grouped_medians(calls: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, float]:
    """Median seconds per model, measured group by group (v2 models with ``none``, paper models with ``none``),
    in a new order each repeat. Each ratio is taken against the ``none`` of its own group (key
    ``"none (paper group)"``): a large paper-layout model slows whichever model runs after it."""
    result: Dict[str, float] = {}
    for group in GROUPS:
        samples: Dict[str, List[float]] = {label: [] for label in group}
        for repeat in range(repeats):
            for label in _shuffled(group, repeat):
                start = time.perf_counter()
                calls[label]()
                samples[label].append(time.perf_counter() - start)
        for label, values in samples.items():
            key = "none (paper group)" if label == "none" and group is not GROUPS[0] else label
            result[key] = statistics.median(values)
    return result


def _shuffled(labels: Sequence[str], repeat: int) -> List[str]:
    """The models in a new (seeded) order each repeat: a large model leaves caches and allocator state that
    slow whichever model runs next, so a fixed order biases the ratios (by up to 20% at 160x160x128)."""
    order = list(labels)
    random.Random(repeat).shuffle(order)
    return order


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _train_step(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer) -> Callable:
    from monai.losses import DiceCELoss

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()
        if x.is_cuda:
            torch.cuda.synchronize()
    return step


def _mode(label: str) -> Dict[str, str]:
    _, arch, fusion = next(m for m in MODES if m[0] == label)
    return {"arch": arch, "fusion": fusion}


def _setup(label: str, size: Sequence[int], batch: int, classes: int, fuse: str, features: int = 8):
    torch.manual_seed(0)
    device = _device()
    net = FrequencyDisentangledNet("UNet", 1, classes, fuse=fuse, features=features, **_mode(label)).to(device)
    x = torch.rand(batch, 1, *size, device=device)
    y = torch.randint(0, classes, (batch, 1, *size), device=device).float()
    return net, x, y


def train_step_times(size: Sequence[int], repeats: int, batch: int = 2, classes: int = 3,
                     fuse: str = "concat") -> Dict[str, float]:
    """Median train-step seconds per mode (see :func:`_grouped_medians`)."""
    steps = {}
    for label in LABELS:
        net, x, y = _setup(label, size, batch, classes, fuse)
        steps[label] = _train_step(net, x, y, torch.optim.Adam(net.parameters(), 1e-3))
        steps[label]()  # warm-up
    return _grouped_medians(steps, repeats)


def activation_memory_mb(size: Sequence[int], batch: int = 2, classes: int = 3, fuse: str = "concat") -> Dict[str, float]:
    """Memory of the tensors autograd saves for backward in one train step (the activation peak), per mode.

    Counted exactly through ``torch.autograd.graph.saved_tensors_hooks`` (unique storages), so it is
    the same on CPU and GPU and free of allocator noise; parameters and optimizer state are left out.
    """
    result = {}
    for label in LABELS:
        net, x, y = _setup(label, size, batch, classes, fuse)
        storages: Dict[int, int] = {}
        params = {p.data_ptr() for p in net.parameters()}

        def pack(t: torch.Tensor) -> torch.Tensor:
            ptr = t.untyped_storage().data_ptr()
            if ptr not in params and ptr != x.untyped_storage().data_ptr():
                storages[ptr] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = net(x)
        out.float().mean().backward()
        result[label] = sum(storages.values()) / 2**20
    return result


def forward_gflops(size: Sequence[int], classes: int = 3, fuse: str = "concat") -> Dict[str, float]:
    """Forward GFLOPs of one volume (``torch.utils.flop_counter``: convolutions and matrix products) per mode.

    FLOPs are what the architecture costs, free of timing noise: they show how much of a time ratio is
    inherent and how much is implementation.
    """
    from torch.utils.flop_counter import FlopCounterMode

    def count(label: str) -> float:
        net, x, _ = _setup(label, size, 1, classes, fuse)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(x)
        return counter.get_total_flops() / 1e9

    return {label: count(label) for label in LABELS}


def inference_times(repeats: int, classes: int = 2, fuse: str = "concat") -> Dict[str, Dict[str, float]]:
    """Median seconds to segment one volume at each task's network size, per fusion mode (see
    :func:`_grouped_medians`). Small volumes take tens of milliseconds, where a few repeats are at the mercy of
    the scheduler: they get proportionally more repeats (the same wall time per model as the largest size)."""
    result = {}
    largest = max(math.prod(size) for size in TASK_SIZES.values())
    for task, size in TASK_SIZES.items():
        task_repeats = repeats * max(1, min(8, largest // math.prod(size)))
        nets = {label: _setup(label, size, 1, classes, fuse)[0].eval() for label in LABELS}
        x = torch.rand(1, 1, *size, device=_device())

        def call(net: torch.nn.Module) -> Callable[[], None]:
            def run() -> None:
                with torch.no_grad():
                    net(x)
                if x.is_cuda:
                    torch.cuda.synchronize()
            return run

        calls = {label: call(net) for label, net in nets.items()}
        for run in calls.values():
            run()  # warm-up
        result[task] = _grouped_medians(calls, task_repeats)
    return result


def _split_with_fftn(x: torch.Tensor, cutoff: float = 0.1) -> torch.Tensor:
    mask = low_pass_mask(x.shape[-3:], cutoff, device=x.device)
    return torch.fft.ifftn(torch.fft.fftn(x, dim=(-3, -2, -1)) * mask, dim=(-3, -2, -1)).real


def fft_split_times(size: Sequence[int], repeats: int, batch: int = 2) -> Dict[str, float]:
    """Median seconds of the low/high split: the networks' separable box projection, real FFTs
    (``disentangle``, any mask) and complex FFTs."""
    x = torch.rand(batch, 1, *size, device=_device())
    split = FrequencySplit().to(x.device)
    return {"separable": time_call(lambda: split(x), repeats), "rfftn": time_call(lambda: disentangle(x), repeats),
            "fftn": time_call(lambda: _split_with_fftn(x), repeats)}


def loading_times(bundle: Path, n_cases: int = 12) -> Dict[str, float]:
    """Seconds per epoch of the bundle's training preprocessing: plain Dataset vs CacheDataset (2nd epoch)."""
    from monai.bundle import ConfigParser
    from monai.data import CacheDataset, DataLoader, Dataset

    from ..data import load_msd_datalist
    from .phantoms import write_phantom_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data = write_phantom_dataset("hippocampus", Path(tmp) / "data", n=n_cases, progress=False)
        items = load_msd_datalist(data)
        parser = ConfigParser()
        parser.read_config(str(bundle / "configs" / "train.json"))
        parser["train#dataset#data"] = items  # what a "median" target spacing is planned on; no split needed
        transform = parser.get_parsed_content("train#preprocessing")

        def epoch(dataset) -> float:
            start = time.perf_counter()
            for _ in DataLoader(dataset, batch_size=2, num_workers=0):
                pass
            return time.perf_counter() - start

        plain = Dataset(items, transform)
        cached = CacheDataset(items, transform, cache_rate=1.0, num_workers=0, progress=False)
        epoch(cached)  # the first epoch fills nothing more: CacheDataset caches at construction
        return {"no cache": statistics.median(epoch(plain) for _ in range(3)),
                "CacheDataset": statistics.median(epoch(cached) for _ in range(3))}


CT_SHAPE, CT_SPACING = (512, 512, 200), (0.8, 0.8, 2.5)
CT_TARGETS = {"peak_rss_gib": 6.0, "seconds": 180.0}


def _untrained_weights(bundle: Path, root: Path, overrides: Dict[str, object]) -> None:
    """``root/models/model.pt``: the bundle's own network, untrained (inference costs what trained weights cost)."""
    from monai.bundle import ConfigParser

    from ..recipe import weights_with_record

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.update({"bundle_root": str(root), **overrides})
    record = {key: parser.get_parsed_content(key) for key in ("sampling", "patch_size", "spatial_size")}
    record["target_spacing"] = parser.get_parsed_content("target_spacing_mm")
    (root / "models").mkdir(parents=True)
    torch.save(weights_with_record(parser.get_parsed_content("network_def"), **record), root / "models" / "model.pt")


def ct_scale_inference(bundle: Path, shape: Sequence[int] = CT_SHAPE, spacing: Sequence[float] = CT_SPACING,
                       threads: int = 2, sampling: str = "patch") -> Dict[str, object]:
    """The bundle's ``inference.json`` run as a user runs it (``python -m monai.bundle run``, a child process
    with ``threads`` threads) on one phantom CT of ``shape`` voxels at ``spacing`` mm (Hounsfield units, stored
    LPS as DICOM-derived CT is): wall seconds, the child's peak resident memory (``os.wait4``), and whether the
    label map came back on the input's grid and affine."""
    import os
    import subprocess
    import sys

    import nibabel as nib
    import numpy as np

    from .phantoms import make_case

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        image = make_case("spleen", 0, shape)[0]
        affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
        nib.save(nib.Nifti1Image(image, affine), str(root / "ct.nii.gz"))
        del image
        overrides = {"sampling": sampling}
        _untrained_weights(bundle, root, overrides)
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json"),
               "--bundle_root", str(root), "--input_dir", str(root / "ct.nii.gz"), "--output_dir", str(root / "out"),
               "--num_workers", "0", "--sampling", sampling]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stderr = child.stderr.read() if child.stderr else ""
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise RuntimeError(f"inference failed ({' '.join(cmd)}):\n{stderr[-2000:]}")
        pred = nib.load(str(root / "out" / "ct_seg.nii.gz"))
        on_grid = tuple(pred.shape) == tuple(shape) and bool(np.allclose(pred.affine, affine, atol=1e-4))
        return {"seconds": seconds, "peak_rss_gib": usage.ru_maxrss / 2**20, "on_input_grid": on_grid}


def ct_scale_report(threads: int = 2) -> List[str]:
    from ..bundle.paths import bundle_dir

    bundle = bundle_dir("spleen_ct_fd_segmentation")
    result = ct_scale_inference(bundle, threads=threads)
    lines = ["", f"### Spleen CT bundle, patch mode, one {'x'.join(map(str, CT_SHAPE))} CT at "
             f"{'x'.join(map(str, CT_SPACING))} mm ({threads} threads, `python -m monai.bundle run` as a user runs it)",
             "", "| measure | value | target |", "|---|---|---|"]
    for key, unit, digits in (("seconds", "s", 1), ("peak_rss_gib", "GiB", 2)):
        ok = result[key] <= CT_TARGETS[key]
        lines.append(f"| {key} | {result[key]:.{digits}f} {unit} | <= {CT_TARGETS[key]:g} {'yes' if ok else '**no**'} |")
    lines.append(f"| label map on the input's grid and affine | {'yes' if result['on_input_grid'] else '**no**'} | |")
    return lines


def _ratio_rows(values: Dict[str, float], unit: str, digits: int, targets: Dict[str, float]) -> List[str]:
    rows = []
    for label in LABELS:
        base = values.get("none (paper group)", values["none"]) if label.startswith("paper") else values["none"]
        ratio = values[label] / base
        target = f"<= {targets[label]:.2f} {'yes' if ratio <= targets[label] else '**no**'}" if label in targets else ""
        rows.append(f"| {label} | {values[label]:.{digits}f} {unit} | {ratio:.3f} | {target} |")
    return rows


def _table(title: str, values: Dict[str, float], unit: str, digits: int = 3,
           targets: Optional[Dict[str, float]] = None) -> List[str]:
    return ["", f"### {title}", "", "| model | value | ratio to none | target (v2) |", "|---|---|---|---|",
            *_ratio_rows(values, unit, digits, targets or {})]


def run_benchmarks(repeats: int = 7, train_size: Sequence[int] = (64, 64, 48), bundle: Path | None = None,
                   overlay_bundle: Path | None = None, only: Optional[Sequence[str]] = None) -> str:
    """The measurements as a Markdown report (also printed): ``only`` picks sections among ``fd`` (FD models
    against the plain backbone), ``overlay`` (needs ``overlay_bundle``), ``onnx``, ``ct`` (the spleen bundle's
    inference on a real-size CT: time and peak memory) and ``prediction`` (seconds per case of the shipped
    bundles' prediction, torch against onnxruntime, with mirroring and a 5-model ensemble; only when asked);
    default all that apply."""
    sections = set(only or ("fd", "overlay", "onnx", "ct"))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    lines = [f"device: {_device()}, torch {torch.__version__}, threads {torch.get_num_threads()}"]
    if "fd" in sections:
        lines += _fd_sections(repeats, train_size, bundle)
    if "overlay" in sections and overlay_bundle is not None:
        lines += overlay_report(overlay_bundle, repeats)
    if "onnx" in sections:
        lines += onnx_report(overlay_bundle, repeats)
    if "ct" in sections:
        lines += ct_scale_report()
    if "prediction" in sections:  # minutes: only when asked for
        from .bench_prediction import prediction_report

        shipped = Path(__file__).resolve().parents[2] / "bundles"
        lines += prediction_report({"hippocampus": shipped / "hippocampus_mri_fd_segmentation",
                                    "heart": shipped / "heart_mri_fd_segmentation"})
    report = "\n".join(lines)
    print(report)
    return report


def _fd_sections(repeats: int, train_size: Sequence[int], bundle: Path | None) -> List[str]:
    lines = [f"FD models against the plain backbone: "
             f"backbone MONAI UNet (16,32,64,128), public API (split included), paper layout with fuse=concat "
             f"and 8 branch features, medians over {repeats} repeats; times in two groups (v2 models with none, "
             f"paper models with none), a new order each repeat, each ratio against its own group's none"]
    size = tuple(train_size)
    shape = "x".join(map(str, size))
    lines += _table(f"Train step (batch 2, {shape}, DiceCE, Adam)", train_step_times(size, repeats), "s",
                    targets=TIME_TARGETS)
    lines += _table(f"Activation memory of a train step (batch 2, {shape}; tensors saved for backward)",
                    activation_memory_mb(size), "MB", 1, MEMORY_TARGETS)
    lines += _table(f"Forward FLOPs of one volume ({shape})", forward_gflops(size), "GFLOP")
    for task, times in inference_times(repeats).items():
        lines += _table(f"Inference, one volume ({task}, {'x'.join(map(str, TASK_SIZES[task]))})", times, "s",
                        targets=TIME_TARGETS)
    fft = fft_split_times((160, 160, 128), repeats)
    lines += ["", "### Low/high split alone (2 x 1 x 160x160x128)", "", "| method | time | ratio to separable |",
              "|---|---|---|", *[f"| {k} | {v:.4f} s | {v / fft['separable']:.2f} |" for k, v in fft.items()]]
    if bundle is not None:
        load = loading_times(bundle)
        lines += ["", "### Data loading per epoch (12 hippocampus phantoms, bundle preprocessing)", "",
                  "| dataset | time | ratio to no cache |", "|---|---|---|",
                  f"| no cache | {load['no cache']:.3f} s | 1.000 |",
                  f"| CacheDataset | {load['CacheDataset']:.3f} s | {load['CacheDataset'] / load['no cache']:.3f} |"]
    return lines

OVERLAY_TARGETS = {"early": 1.05, "late": 1.10}


def _median_times(calls: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, float]:
    """Median seconds of each call, all measured side by side in a new order each repeat (after one warm-up)."""
    for call in calls.values():
        call()
    samples: Dict[str, List[float]] = {label: [] for label in calls}
    for repeat in range(repeats):
        for label in _shuffled(list(calls), repeat):
            start = time.perf_counter()
            calls[label]()
            samples[label].append(time.perf_counter() - start)
    return {label: statistics.median(values) for label, values in samples.items()}


def overlay_costs(bundle_root: Path, repeats: int, patch: Sequence[int] = (96, 96, 96),
                  volume: Sequence[int] = (256, 256, 128), classes: Optional[int] = None) -> Dict[str, Dict[str, float]]:
    """A zoo bundle's own network against its FD overlays (early, late v2), side by side: one train step on a
    ``patch`` (batch 1, DiceCE, Adam) and sliding-window inference on a ``volume`` (roi ``patch``, overlap 0.5,
    4 windows a batch, as the zoo spleen bundle infers)."""
    from monai.inferers import SlidingWindowInferer

    from ..bundle.overlay import bundle_networks

    device = _device()
    networks = {k: v.to(device) for k, v in bundle_networks(bundle_root).items()}
    out_channels = classes or int(networks["early"].out_channels)
    x = torch.rand(1, networks["early"].in_channels, *patch, device=device)
    y = torch.randint(0, out_channels, (1, 1, *patch), device=device).float()
    steps = {k: _train_step(net.train(), x, y, torch.optim.Adam(net.parameters(), 1e-3)) for k, net in networks.items()}
    train = _median_times(steps, repeats)
    inferer = SlidingWindowInferer(roi_size=list(patch), sw_batch_size=4, overlap=0.5)
    image = torch.rand(1, networks["early"].in_channels, *volume, device=device)

    def infer(net: torch.nn.Module) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                inferer(image, net.eval())
        return run

    sliding = _median_times({k: infer(net) for k, net in networks.items()}, max(1, repeats // 2))
    return {"train": train, "sliding": sliding}


def onnx_times(networks: Dict[str, torch.nn.Module], size: Sequence[int], repeats: int,
               in_channels: int = 1) -> Dict[str, Dict[str, float]]:
    """Seconds of one forward pass on a ``size`` input, torch (eval, no grad) beside onnxruntime (CPU) for each
    network exported with ``torch.onnx.export``; also the largest absolute difference of their outputs."""
    import onnxruntime

    x = torch.rand(1, in_channels, *size)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, net in networks.items():
            net = net.eval().cpu()
            path = Path(tmp) / f"{label.replace(' ', '_')}.onnx"
            torch.onnx.export(net, (x,), str(path), input_names=["image"], output_names=["pred"])
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

            def torch_run(net: torch.nn.Module = net) -> torch.Tensor:
                with torch.no_grad():
                    return net(x)

            def onnx_run(session=session):
                return session.run(None, {"image": x.numpy()})[0]

            times = _median_times({"torch": torch_run, "onnxruntime": onnx_run}, repeats)
            difference = float((torch_run() - torch.from_numpy(onnx_run())).abs().max())
            result[label] = {**times, "max_abs_difference": difference}
    return result


def overlay_report(bundle_root: Path, repeats: int) -> List[str]:
    """Markdown of :func:`overlay_costs` and :func:`onnx_times` for a zoo bundle."""
    costs = overlay_costs(bundle_root, repeats)
    name = Path(bundle_root).name
    lines = []
    for key, title in (("train", "train step, batch 1, 96x96x96 patch"),
                       ("sliding", "sliding-window inference, 256x256x128 volume, roi 96^3, overlap 0.5")):
        values = costs[key]
        lines += ["", f"### FD overlay on `{name}`: {title}", "", "| network | time | ratio to the bundle's own | target |",
                  "|---|---|---|---|"]
        for label, value in values.items():
            ratio = value / values["none"]
            target = OVERLAY_TARGETS.get(label)
            verdict = f"<= {target:.2f} {'yes' if ratio <= target else '**no**'}" if target else ""
            shown = "the bundle's own network" if label == "none" else f"overlay, {label} v2"
            lines.append(f"| {shown} | {value:.3f} s | {ratio:.3f} | {verdict} |")
    return lines


def onnx_report(overlay_bundle: Optional[Path], repeats: int) -> List[str]:
    """Markdown of torch against onnxruntime for the bundles' default network (early v2, 64x64x48) and, given a
    zoo bundle, its early overlay on a 96^3 patch."""
    rows = []
    networks = {"FD bundle default (early v2, UNet 16-128)": (FrequencyDisentangledNet("UNet", 1, 3), (64, 64, 48))}
    if overlay_bundle is not None:
        from ..bundle.overlay import bundle_networks

        built = bundle_networks(overlay_bundle, ("none", "early"))
        name = Path(overlay_bundle).name
        networks[f"{name}, its own network"] = (built["none"], (96, 96, 96))
        networks[f"{name}, FD overlay early v2"] = (built["early"], (96, 96, 96))
    for label, (net, size) in networks.items():
        times = onnx_times({label: net}, size, repeats, int(getattr(net, "in_channels", 1)))[label]
        rows.append(f"| {label} | {'x'.join(map(str, size))} | {times['torch']:.3f} s | {times['onnxruntime']:.3f} s | "
                    f"{times['onnxruntime'] / times['torch']:.3f} | {times['max_abs_difference']:.1e} |")
    return ["", "### ONNX: one forward pass, torch against onnxruntime (CPU)", "",
            "| network | input | torch | onnxruntime | ratio | max abs difference |", "|---|---|---|---|---|---|", *rows]
