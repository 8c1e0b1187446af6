"""The commands of ``python -m freq_transforms``: one function each, its docstring the ``--help`` text. Each imports
what it runs when it runs, so the command line starts without torch or MONAI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

__all__ = ["COMMANDS"]


def _as_list(values) -> List:
    if isinstance(values, (list, tuple)):
        return list(values)
    return [v for v in str(values).split(",") if v]


def phantoms(task: str, out: str, n: int = 12, seed: int = 0, shape: Optional[Sequence[int]] = None,
             overwrite: bool = False) -> str:
    """Write an MSD-layout phantom dataset: imagesTr/, labelsTr/, dataset.json.

    Args:
        task: red_nucleus, dentate_nucleus, spleen, heart or hippocampus.
        out: folder to create.
        n: number of cases.
        seed: random seed (same seed, same files).
        shape: grid size, e.g. 48,48,32 (default: the task's own).
        overwrite: replace a non-empty ``out``.
    """
    from .lab.phantoms import write_phantom_dataset

    grid = [int(s) for s in _as_list(shape)] if shape is not None else None
    return str(write_phantom_dataset(task, out, n, seed, grid, overwrite))


def split(dataset_dir: str, split_ratio: Sequence[float] = (166, 42, 52), split_seed: int = 0, seed: int = 0,
          n_train: Optional[int] = None, output_dir: Optional[str] = None, folds: Optional[int] = None,
          fold: int = 0, list_cases: bool = False) -> str:
    """Show the train/val/test split a bundle would use (and with output_dir write it as split.json).

    Args:
        dataset_dir: MSD-layout folder (dataset.json, imagesTr/, labelsTr/).
        split_ratio: train,val,test proportions, e.g. 25,7,9 (the bundle's split_ratio).
        split_seed: seed of the val/test cut (fixed per dataset: the same val and test for every run).
        seed: training seed; orders the train part, of which the first n_train are used.
        n_train: training cases to use (default: the whole train part).
        output_dir: also write split.json there.
        folds: K-fold cross-validation instead of split_ratio (test on fold `fold`, validate on the next).
        fold: which fold (0..folds-1).
        list_cases: list the cases of each part, not just their counts.
    """
    from .data import make_split

    parts = make_split(dataset_dir, [float(r) for r in _as_list(split_ratio)], split_seed, seed, n_train, output_dir,
                       folds=folds, fold=fold)
    lines = []
    for name, items in parts.items():
        lines.append(f"{name}: {len(items)}")
        if list_cases:
            lines += [f"  {Path(item['image']).name}" for item in items]
    return "\n".join(lines)


def figure(image: str, out: str = "frequency_split.png", cutoffs: Sequence[float] = (0.05, 0.1, 0.25),
           mask: str = "box", centered: bool = True) -> str:
    """PNG of an image's middle slice and its low/high parts for a few cutoffs.

    Args:
        image: a NIfTI image.
        out: PNG to write.
        cutoffs: cutoffs to show, one row each, e.g. 0.05,0.1,0.25.
        mask: low-pass mask: box, ball or gaussian.
        centered: the true low-pass (True) or the released code's unshifted split (False).
    """
    from .lab.plots import frequency_split_figure

    return str(frequency_split_figure(image, out, [float(c) for c in _as_list(cutoffs)], mask, centered))


def curve(csv: Sequence[str], out: str = "dice_vs_time.png", labels: Optional[Sequence[str]] = None,
          title: str = "") -> str:
    """PNG of validation Dice against training time from runs' eval/validation_metrics.csv.

    Args:
        csv: one or more validation_metrics.csv files, e.g. a,b.
        out: PNG to write.
        labels: a legend label per file (default: each file's run folder name).
        title: figure title.
    """
    from .lab.plots import dice_time_figure

    files = [str(c) for c in _as_list(csv)]
    names = [str(n) for n in _as_list(labels)] if labels else [Path(f).parent.parent.name for f in files]
    if len(names) != len(files):
        raise ValueError(f"--labels has {len(names)} labels for {len(files)} files")
    return str(dice_time_figure(dict(zip(names, files)), out, title))


def demo(out: str = "demo_output", n_cases: int = 20, epochs: int = 40, val_interval: int = 5,
         fusions: Optional[Sequence[str]] = None, seed: int = 0, bundle: Optional[str] = None,
         iterations_per_epoch: int = 8, sampling: Optional[str] = None) -> str:
    """The main job: phantoms -> train the hippocampus bundle with each fusion -> evaluate -> table + PNG.

    Args:
        out: output folder (phantoms, one run folder per fusion mode, results.md, demo.png).
        n_cases: phantom cases (split into train/val/test in the paper's proportions).
        epochs: training epochs per fusion mode (minutes on 2 CPU cores with the defaults).
        val_interval: validate every this many epochs (and after the last).
        fusions: FD modes to compare, e.g. none,early,late (default: none and the bundle's default FD mode).
        seed: training seed.
        bundle: bundle folder (default: the hippocampus bundle installed with the package).
        iterations_per_epoch: optimiser steps per epoch where the bundle trains on patches (sampling patch):
            8 is about one pass over the phantoms' train part, so an epoch costs what it costs in resize mode.
        sampling: patch or resize (default: the bundle's).
    """
    from .bundle_paths import bundle_dir
    from .lab.demo import run_demo

    folder = Path(bundle) if bundle else bundle_dir("hippocampus_mri_fd_segmentation")
    return str(run_demo(Path(out), folder, n_cases, epochs, val_interval, _as_list(fusions) if fusions else None,
                        seed, iterations_per_epoch, sampling))


def release(bundles: str = "bundles", out: str = "dist", base_url: Optional[str] = None,
            weights_url: Optional[str] = None) -> Dict[str, Dict[str, str]]:
    """Write zoo-style archives <out>/<name>_v<version>.zip and <out>/model_info.json.

    Args:
        bundles: folder of bundles (its model_info.json records the released versions).
        out: output folder (an existing model_info.json is merged, older versions stay listed).
        base_url: where the zips will be published, e.g. a GitHub release's download URL.
        weights_url: host models/ apart (a large_files.yml is shipped instead), e.g. a Hugging Face repo.
    """
    from .release import release as make_release

    return make_release(bundles, out, base_url, weights_url)


def bench(repeats: int = 7, train_size: Sequence[int] = (64, 64, 48), out: Optional[str] = None,
          bundle: Optional[str] = None, overlay_bundle: Optional[str] = None,
          only: Optional[Sequence[str]] = None) -> None:
    """Measure FD against the plain backbone side by side: train step, memory, inference, FFT, loading, ONNX.

    Args:
        repeats: repeats per measurement (medians are printed).
        train_size: network input size of the train-step measurement, e.g. 64,64,48.
        out: also write the Markdown report there (e.g. docs/benchmarks.md).
        bundle: bundle whose preprocessing is timed (default: the hippocampus bundle installed with the package).
        overlay_bundle: a model-zoo bundle folder: also time its own network against its FD overlays (train step
            on a 96^3 patch, sliding-window inference on 256x256x128) and in onnxruntime.
        only: sections to run, e.g. overlay,onnx (fd, overlay, onnx, ct; default all that apply). ct: the spleen
            bundle's patch-mode inference on a 512x512x200 CT phantom at 0.8x0.8x2.5 mm, peak memory and time.
    """
    from .atomic import atomic_write_text
    from .lab.bench import run_benchmarks
    from .bundle_paths import bundle_dir

    folder = Path(bundle) if bundle else bundle_dir("hippocampus_mri_fd_segmentation")
    size = [int(s) for s in _as_list(train_size)]
    sections = [str(o) for o in _as_list(only)] if only else None
    report = run_benchmarks(repeats, size, folder, Path(overlay_bundle) if overlay_bundle else None, sections)
    if out:
        command = f"python -m freq_transforms bench --repeats {repeats} --train_size {','.join(map(str, size))}"
        if overlay_bundle:
            command += f" --overlay_bundle {overlay_bundle}"
        if sections:
            command += f" --only {','.join(sections)}"
        atomic_write_text(out, f"# Benchmarks\n\nCommand: `{command}`\n\n{report}\n")


def sweep(bundle: str, dataset_dir: str, out: str, n_train: Sequence = (4, 8, 17),
          fusion: Sequence[str] = ("none", "early", "late"), seeds: Sequence[int] = (0, 1, 2), epochs: int = 150,
          test_dir: Optional[str] = None, overrides: Optional[Dict] = None, arch: Optional[Sequence[str]] = None,
          folds: Optional[int] = None) -> str:
    """Run the n_train x fusion x arch x seed grid through the bundle's configs; resumable; writes summaries.

    Args:
        bundle: bundle folder, e.g. bundles/hippocampus_mri_fd_segmentation.
        dataset_dir: MSD-layout folder (split by the bundle: fixed val/test, nested train subsets).
        out: output folder: runs/<n>_<fusion>_s<seed>/, summary.csv, summary.md, dice_vs_ntrain.png.
        n_train: training-set sizes, e.g. 4,8,17; "all" for the whole train part.
        fusion: FD modes, e.g. none,early,late.
        seeds: training seeds, e.g. 0,1,2.
        epochs: epochs per run.
        test_dir: score an external MSD-layout test set instead of the bundle's test split.
        overrides: more bundle overrides, e.g. "{'val_interval': 10, 'cutoff': 0.2}".
        arch: FD layer layouts to run each FD mode with, e.g. v2,paper (default: the bundle's arch).
        folds: K-fold cross-validation (every case tested once; duplicates of one image kept together).
    """
    from .lab.sweep import run_sweep

    sizes = [None if str(n) == "all" else int(n) for n in _as_list(n_train)]
    return str(run_sweep(Path(bundle), dataset_dir, Path(out), sizes, [str(f) for f in _as_list(fusion)],
                         [int(s) for s in _as_list(seeds)], int(epochs), test_dir, dict(overrides or {}),
                         [str(a) for a in _as_list(arch)] if arch else None, int(folds) if folds else None))


def trial(bundle_root: str, dataset_dir: str, out: str, n_train: Sequence[int] = (4, 8),
          seeds: Sequence[int] = (0, 1, 2), fusion: Sequence[str] = ("none", "early", "late"),
          folds: Optional[int] = None, overrides: Optional[Dict] = None, test_dir: Optional[str] = None,
          estimate: bool = True) -> str:
    """Does FD help on my data? Train the bundle with and without FD on the same cases, seeds and budget; report
    paired test Dice with CIs (out/trial.md, trial.json, trial.png). Resumable.

    Args:
        bundle_root: this project's bundle or any zoo segmentation bundle the overlay wraps (JSON or YAML).
        dataset_dir: the cases, laid out as the bundle expects; the trial splits them (duplicates kept together).
        out: output folder: plan.json, runs/<fold_n_seed_fusion>/, trial.md, trial.json, trial.png.
        n_train: training-set sizes, nested (the 4 cases are inside the 8), e.g. 4,8.
        seeds: training seeds, e.g. 0,1,2 (each also draws its own training cases).
        fusion: none (the bundle as it is), early, late.
        folds: K-fold cross-validation (every case tested once) instead of one held-out test part.
        overrides: the bundle's own keys for its budget and loaders, e.g. "{'num_epochs': 50}".
        test_dir: test cases from another folder (same layout) instead of a held-out part.
        estimate: time one epoch first to say how long the trial takes.
    """
    from .trial import run_trial

    summary = run_trial(Path(bundle_root), Path(dataset_dir), Path(out), [int(n) for n in _as_list(n_train)],
                        [int(s) for s in _as_list(seeds)], [str(f) for f in _as_list(fusion)],
                        int(folds) if folds else None, dict(overrides or {}), Path(test_dir) if test_dir else None,
                        estimate)
    return f"{Path(out) / 'trial.md'}: " + "; ".join(c["verdict"] for c in summary["comparisons"])


def export(out: str, dest: str, task: Optional[str] = None) -> str:
    """Copy a sweep's per-run records (per-case metrics, splits, validation Dice; no weights) and summarise them.

    Args:
        out: the sweep's output folder.
        dest: folder to create or update, e.g. docs/results/hippocampus_grid (summary.csv, summary.md and
            dice_vs_ntrain.png are written there).
        task: name in the table's task column (default: dest's name).
    """
    from .lab.sweep import export_records

    return str(export_records(Path(out), Path(dest), task or Path(dest).name))


def compare(a: str, b: str, n_train: str = "4", fusion_a: str = "early", fusion_b: Optional[str] = None,
            arch_a: Optional[str] = None, arch_b: Optional[str] = None, seed: Optional[int] = None) -> str:
    """Paired bootstrap CI of mean test Dice between two sweeps' runs on the same test cases (A minus B).

    Args:
        a: sweep output folder of side A (e.g. an ablation sweep).
        b: sweep output folder of side B (e.g. the main grid); may be the same as a.
        n_train: training-set size of the runs to compare ("all" for the full train part).
        fusion_a: FD mode of side A.
        fusion_b: FD mode of side B (default: fusion_a).
        arch_a: layer layout of side A (v2 or paper; default: any).
        arch_b: layer layout of side B (v2 or paper; default: any).
        seed: compare the runs of this seed only (default: each side averaged over all its seeds).
    """
    from .lab.sweep import compare_runs

    n = None if str(n_train) == "all" else int(n_train)
    return compare_runs(Path(a), Path(b), n, str(fusion_a), str(fusion_b or fusion_a), arch_a, arch_b,
                        None if seed is None else int(seed))


def contrast(task: str = "red_nucleus", n: int = 6) -> Dict[str, float]:
    """How far each intensity scaling sets the target apart from the tissue around it, on phantoms of a task.

    Args:
        task: red_nucleus, dentate_nucleus, spleen, heart or hippocampus.
        n: phantoms to average over (mean scaled target minus mean scaled surroundings).
    """
    from .lab.contrast import phantom_contrast

    return {mode: round(value, 3) for mode, value in phantom_contrast(task, n=int(n)).items()}


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
    from .overlay import OVERLAY_FILE, write_overlay

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
    from .bundle_build import build_bundles

    changed = build_bundles(Path(source), Path(out), check=bool(check))
    if check and changed:
        print("out of date (run python -m freq_transforms bundles build):\n  " + "\n  ".join(changed))
        sys.exit(1)
    return f"{len(changed)} file(s) {'differ' if check else 'written'}"


def recipe(weights: str, into: Optional[str] = None) -> str:
    """Print the recipe a model was trained with (model.pt, TorchScript or ONNX); or stamp it into an export.

    Args:
        weights: a weights file: a bundle's models/model.pt, a TorchScript export (.ts) or an ONNX file (.onnx).
        into: an exported model (.onnx, or .ts) to write the recipe into (ONNX metadata_props
            freq_transforms_recipe, TorchScript extra file recipe.json), e.g. after monai.bundle onnx_export.
    """
    import json

    from .recipe import read_recipe, write_recipe_into

    found = read_recipe(weights)
    if found is None:
        raise ValueError(f"{weights} carries no freq_transforms recipe (weights saved by an older version, or not "
                         "by an FD network)")
    if into:
        return f"wrote the recipe of {weights} into {write_recipe_into(into, found)}"
    return json.dumps(found, indent=2, sort_keys=True)


COMMANDS: Dict[str, Callable] = {"demo": demo, "phantoms": phantoms, "split": split, "figure": figure, "curve": curve,
                                 "sweep": sweep, "export": export, "compare": compare, "bench": bench,
                                 "contrast": contrast, "overlay": overlay, "recipe": recipe, "release": release,
                                 "trial": trial, "bundles build": bundles_build}
