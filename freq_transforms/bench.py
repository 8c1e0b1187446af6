"""Side-by-side performance measurements: FD (early/late) against the plain backbone, in one run.

``python -m freq_transforms bench`` prints medians over repeats and ratios to ``fusion=none``:
train-step time and peak memory, inference time per task size, the FFT split (rfftn vs fftn), and
data loading per epoch with and without caching.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import torch

from .fourier import disentangle, low_pass_mask
from .networks import FUSIONS, FrequencyDisentangledNet

__all__ = ["time_call", "train_step_times", "activation_memory_mb", "forward_gflops", "inference_times",
           "fft_split_times", "loading_times", "run_benchmarks"]

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


def _setup(fusion: str, size: Sequence[int], batch: int, classes: int, fuse: str, features: int = 8):
    torch.manual_seed(0)
    device = _device()
    net = FrequencyDisentangledNet("UNet", 1, classes, fusion=fusion, fuse=fuse, features=features).to(device)
    x = torch.rand(batch, 1, *size, device=device)
    y = torch.randint(0, classes, (batch, 1, *size), device=device).float()
    return net, x, y


def train_step_times(size: Sequence[int], repeats: int, batch: int = 2, classes: int = 3,
                     fuse: str = "concat") -> Dict[str, float]:
    """Median train-step seconds per fusion mode; repeats are interleaved across modes against drift."""
    steps = {}
    for fusion in FUSIONS:
        net, x, y = _setup(fusion, size, batch, classes, fuse)
        steps[fusion] = _train_step(net, x, y, torch.optim.Adam(net.parameters(), 1e-3))
        steps[fusion]()  # warm-up
    samples: Dict[str, List[float]] = {f: [] for f in FUSIONS}
    for _ in range(repeats):
        for fusion, step in steps.items():
            start = time.perf_counter()
            step()
            samples[fusion].append(time.perf_counter() - start)
    return {f: statistics.median(v) for f, v in samples.items()}


def activation_memory_mb(size: Sequence[int], batch: int = 2, classes: int = 3, fuse: str = "concat") -> Dict[str, float]:
    """Memory of the tensors autograd saves for backward in one train step (the activation peak), per mode.

    Counted exactly through ``torch.autograd.graph.saved_tensors_hooks`` (unique storages), so it is
    the same on CPU and GPU and free of allocator noise; parameters and optimizer state are left out.
    """
    result = {}
    for fusion in FUSIONS:
        net, x, y = _setup(fusion, size, batch, classes, fuse)
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
        result[fusion] = sum(storages.values()) / 2**20
    return result


def forward_gflops(size: Sequence[int], features: Sequence[int] = (8, 4, 2), classes: int = 3,
                   fuse: str = "concat") -> Dict[str, float]:
    """Forward GFLOPs of one volume (``torch.utils.flop_counter``), for ``none`` and each FD mode x branch width.

    Keys: ``"none"`` and ``"<fusion> f<features>"``. FLOPs are what the architecture costs, free of timing
    noise: they show how much of a time ratio is inherent and how much is implementation.
    """
    from torch.utils.flop_counter import FlopCounterMode

    def count(fusion: str, width: int) -> float:
        net, x, _ = _setup(fusion, size, 1, classes, fuse, width)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(x)
        return counter.get_total_flops() / 1e9

    result = {"none": count("none", 8)}
    for fusion in FUSIONS[1:]:
        for width in features:
            result[f"{fusion} f{width}"] = count(fusion, width)
    return result


def inference_times(repeats: int, classes: int = 2, fuse: str = "concat") -> Dict[str, Dict[str, float]]:
    """Median seconds to segment one volume at each task's network size, per fusion mode."""
    result = {}
    for task, size in TASK_SIZES.items():
        nets = {f: _setup(f, size, 1, classes, fuse)[0].eval() for f in FUSIONS}
        x = torch.rand(1, 1, *size, device=_device())
        samples: Dict[str, List[float]] = {f: [] for f in FUSIONS}
        with torch.no_grad():
            for net in nets.values():
                net(x)
            for _ in range(repeats):
                for fusion, net in nets.items():
                    start = time.perf_counter()
                    net(x)
                    samples[fusion].append(time.perf_counter() - start)
        result[task] = {f: statistics.median(v) for f, v in samples.items()}
    return result


def _split_with_fftn(x: torch.Tensor, cutoff: float = 0.1) -> torch.Tensor:
    mask = low_pass_mask(x.shape[-3:], cutoff, device=x.device)
    return torch.fft.ifftn(torch.fft.fftn(x, dim=(-3, -2, -1)) * mask, dim=(-3, -2, -1)).real


def fft_split_times(size: Sequence[int], repeats: int, batch: int = 2) -> Dict[str, float]:
    """Median seconds of the low/high split with real FFTs (the package) and with complex FFTs."""
    x = torch.rand(batch, 1, *size, device=_device())
    return {"rfftn": time_call(lambda: disentangle(x), repeats), "fftn": time_call(lambda: _split_with_fftn(x), repeats)}


def loading_times(bundle: Path, n_cases: int = 12) -> Dict[str, float]:
    """Seconds per epoch of the bundle's training preprocessing: plain Dataset vs CacheDataset (2nd epoch)."""
    from monai.bundle import ConfigParser
    from monai.data import CacheDataset, DataLoader, Dataset

    from .data import load_msd_datalist
    from .phantoms import write_phantom_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data = write_phantom_dataset("hippocampus", Path(tmp) / "data", n=n_cases, progress=False)
        parser = ConfigParser()
        parser.read_config(str(bundle / "configs" / "train.json"))
        transform = parser.get_parsed_content("train#preprocessing")
        items = load_msd_datalist(data)

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


def _ratio_rows(times: Dict[str, float], unit: str, scale: float = 1.0) -> List[str]:
    base = times["none"]
    return [f"| {f} | {times[f] * scale:.3f} {unit} | {times[f] / base:.3f} |" for f in FUSIONS]


def run_benchmarks(repeats: int = 7, train_size: Sequence[int] = (64, 64, 48), bundle: Path | None = None) -> str:
    """All measurements as a Markdown report (also printed)."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    lines = [f"device: {_device()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
             f"backbone UNet (16,32,64,128), late/early fuse=concat, medians over {repeats} repeats", ""]
    size = tuple(train_size)
    lines += [f"### Train step (batch 2, {'x'.join(map(str, size))}, DiceCE, Adam)", "",
              "| fusion | time | ratio to none |", "|---|---|---|", *_ratio_rows(train_step_times(size, repeats), "s")]
    memory = activation_memory_mb(size)
    lines += ["", "### Activation memory of a train step (tensors saved for backward)", "",
              "| fusion | MB | ratio to none |", "|---|---|---|",
              *[f"| {f} | {memory[f]:.0f} | {memory[f] / memory['none']:.3f} |" for f in FUSIONS]]
    flops = forward_gflops(size)
    lines += ["", f"### Forward FLOPs of one volume ({'x'.join(map(str, size))}; f = branch conv features, bundles use 8)",
              "", "| model | GFLOP | ratio to none |", "|---|---|---|",
              *[f"| {name} | {value:.3f} | {value / flops['none']:.3f} |" for name, value in flops.items()]]
    for task, times in inference_times(repeats).items():
        lines += ["", f"### Inference, one volume ({task}, {'x'.join(map(str, TASK_SIZES[task]))})", "",
                  "| fusion | time | ratio to none |", "|---|---|---|", *_ratio_rows(times, "s")]
    fft = fft_split_times((160, 160, 128), repeats)
    lines += ["", "### FFT split alone (2 x 1 x 160x160x128)", "", "| method | time | ratio to rfftn |", "|---|---|---|",
              f"| rfftn (package) | {fft['rfftn']:.3f} s | 1.000 |",
              f"| fftn | {fft['fftn']:.3f} s | {fft['fftn'] / fft['rfftn']:.3f} |"]
    if bundle is not None:
        load = loading_times(bundle)
        lines += ["", "### Data loading per epoch (12 hippocampus phantoms, bundle preprocessing)", "",
                  "| dataset | time | ratio to no cache |", "|---|---|---|",
                  f"| no cache | {load['no cache']:.3f} s | 1.000 |",
                  f"| CacheDataset | {load['CacheDataset']:.3f} s | {load['CacheDataset'] / load['no cache']:.3f} |"]
    report = "\n".join(lines)
    print(report)
    return report
