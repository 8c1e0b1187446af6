"""The commands of ``python -m freq_transforms``: one function each, its docstring the ``--help`` text. Each imports
what it runs when it runs, so the command line starts without torch or MONAI."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .model_commands import MODEL_COMMANDS

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
    from ..lab.phantoms import write_phantom_dataset

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
    from ..data import make_split

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
    from ..lab.plots import frequency_split_figure

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
    from ..lab.plots import dice_time_figure

    files = [str(c) for c in _as_list(csv)]
    names = [str(n) for n in _as_list(labels)] if labels else [Path(f).parent.parent.name for f in files]
    if len(names) != len(files):
        raise ValueError(f"--labels has {len(names)} labels for {len(files)} files")
    return str(dice_time_figure(dict(zip(names, files)), out, title))


def demo(out: str = "demo_output", n_cases: int = 20, epochs: int = 16, val_interval: int = 4,
         fusions: Optional[Sequence[str]] = None, seed: int = 0, bundle: Optional[str] = None,
         iterations_per_epoch: int = 8, sampling: Optional[str] = None, backbone: Optional[str] = "UNet") -> str:
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
        backbone: the network FD wraps, with MONAI's default arguments: UNet by default, so the demo takes minutes
            on 2 CPU cores; DynUNet (or null: the bundle's own, DynUNet with deep supervision) takes about 4.5 times
            as long per step.
    """
    from ..bundle.paths import bundle_dir
    from ..lab.demo import run_demo

    folder = Path(bundle) if bundle else bundle_dir("hippocampus_mri_fd_segmentation")
    return str(run_demo(Path(out), folder, n_cases, epochs, val_interval, _as_list(fusions) if fusions else None,
                        seed, iterations_per_epoch, sampling, backbone))


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
        only: sections to run, e.g. overlay,onnx (fd, overlay, onnx, ct, prediction; default all but prediction).
            ct: the spleen bundle's patch-mode inference on a 512x512x200 CT phantom at 0.8x0.8x2.5 mm, peak memory
            and time. prediction: seconds per case of the shipped bundles, torch and onnxruntime, tta and ensemble.
    """
    from ..atomic import atomic_write_text
    from ..lab.bench import run_benchmarks
    from ..bundle.paths import bundle_dir

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
          test_dir: Optional[str] = None, overrides: Optional[Dict] = None, arch: Optional[str] = None,
          folds: Optional[int] = None) -> str:
    """The trial on the bundle's own split (trial --split bundle): its n_train, seed and folds keys draw the cases.

    Args:
        bundle: this project's bundle, e.g. bundles/hippocampus_mri_fd_segmentation.
        dataset_dir: MSD-layout folder (split by the bundle: fixed val/test, nested train subsets).
        out: output folder, as the trial's.
        n_train: training-set sizes, e.g. 4,8,17; "all" for the whole train part.
        fusion: FD modes, e.g. none,early,late.
        seeds: training seeds, e.g. 0,1,2.
        epochs: epochs per run.
        test_dir: score an external MSD-layout test set instead of the bundle's test split.
        overrides: more bundle overrides, e.g. "{'val_interval': 10, 'cutoff': 0.2}".
        arch: FD layer layout (v2 or paper; default: the bundle's); one per sweep: compare sweeps with compare.
        folds: K-fold cross-validation (every case tested once; duplicates of one image kept together).
    """
    if arch is not None and len(_as_list(arch)) > 1:
        raise ValueError("--arch takes one layout per sweep: run one sweep per layout and pair them with compare")
    layout = {"arch": str(arch)} if arch is not None else {}
    return trial(bundle, dataset_dir, out, n_train, seeds, fusion, folds, {**(overrides or {}), "epochs": epochs,
                                                                          **layout}, test_dir, split="bundle")


def trial(bundle_root: str, dataset_dir: str, out: str, n_train: Sequence = (4, 8),
          seeds: Sequence[int] = (0, 1, 2), fusion: Sequence[str] = ("none", "early", "late"),
          folds: Optional[int] = None, overrides: Optional[Dict] = None, test_dir: Optional[str] = None,
          estimate: bool = True, split: str = "trial", margin: Optional[float] = None,
          min_cases: Optional[int] = None, max_hours: float = 24, yes: bool = False, only: Optional[str] = None,
          workers: Optional[int] = None, ray_address: Optional[str] = None, cpus_per_run: Optional[int] = None) -> str:
    """Does FD help on my data? Train the bundle with and without FD on the same cases, seeds and budget; report
    paired test Dice with CIs (out/trial.md, trial.json, trial.png). Resumable.

    Args:
        bundle_root: this project's bundle or any zoo segmentation bundle the overlay wraps (JSON or YAML).
        dataset_dir: the cases, laid out as the bundle expects; the trial splits them (duplicates kept together).
        out: output folder: plan.json, runs/<fold_n_seed_fusion>/, trial.md, trial.json, trial.png.
        n_train: training-set sizes, nested (the 4 cases are inside the 8), e.g. 4,8; "all": the whole pool.
        seeds: training seeds, e.g. 0,1,2 (each also draws its own training cases).
        fusion: none (the bundle as it is), early, late.
        folds: K-fold cross-validation (every case tested once) instead of one held-out test part.
        overrides: the bundle's own keys for its budget and loaders, e.g. "{'num_epochs': 50}".
        test_dir: test cases from another folder (same layout) instead of a held-out part.
        estimate: after printing the plan, time one epoch to say how long the trial takes.
        max_hours: a trial estimated to take longer stops before its first run, saying so (see --yes).
        yes: run the trial whatever its estimate.
        split: trial (the trial splits the cases) or bundle (the bundle's own n_train, seed, folds keys do).
        margin: Dice points of practical equivalence (default 0.5): the verdict is a gain or a loss where the paired
            CI lies beyond +-margin, level where it lies within, inconclusive otherwise.
        min_cases: fewer test cases than this (default 10) show no interval, only the mean difference.
        only: one run of the plan, by name (fold0_n4_s0_early) or 0-based index (a Slurm array's
            $SLURM_ARRAY_TASK_ID), run alone; the same command without it reports once every run is done.
        workers: runs at a time, as tasks of a local Ray (pip install "freq_transforms[ray]"); one GPU per run
            where the machine has GPUs.
        ray_address: run on an existing Ray cluster instead: auto, host:port or ray://host:port (--out and
            --dataset_dir on storage every node sees, the same freq_transforms on every node).
        cpus_per_run: CPU threads of each run (and the CPUs each Ray task asks for; 1 on Ray where not given).
    """
    from ..trial import run_trial
    from ..trial.execution import Execution
    from ..trial.report import VerdictRules

    sizes = [None if str(n) == "all" else int(n) for n in _as_list(n_train)]
    given = {"margin": margin, "min_cases": min_cases}
    rules = VerdictRules(**{key: value for key, value in given.items() if value is not None})
    summary = run_trial(Path(bundle_root), Path(dataset_dir), Path(out), sizes,
                        [int(s) for s in _as_list(seeds)], [str(f) for f in _as_list(fusion)],
                        int(folds) if folds else None, dict(overrides or {}), Path(test_dir) if test_dir else None,
                        estimate, str(split), rules=rules, max_hours=None if yes else float(max_hours),
                        only=None if only is None else str(only),
                        execution=Execution(workers, None if ray_address is None else str(ray_address), cpus_per_run))
    if only is not None:
        return f"{summary['only']} done ({summary['done']} of {summary['runs']} runs)"
    return f"{Path(out) / 'trial.md'}: " + "; ".join(c["verdict"] for c in summary["comparisons"])


def export(out: str, dest: str) -> str:
    """Copy a trial's (or sweep's) per-run results (scores, cases, times; no weights) and redo its report there.

    Args:
        out: the trial's output folder.
        dest: folder to create or update, e.g. docs/results/hippocampus_grid (trial.md, trial.json, trial.png).
    """
    from ..trial import export_trial

    return str(export_trial(Path(out), Path(dest)))


def compare(a: str, b: str, n_train: str = "4", fusion_a: str = "early", fusion_b: str = "",
            arch_a: Optional[str] = None, arch_b: Optional[str] = None, seed: Optional[int] = None) -> str:
    """Paired bootstrap CI of mean test Dice between two trials' runs on the same test cases (A minus B).

    Args:
        a: trial (or sweep) output folder of side A (e.g. an ablation with other --overrides).
        b: trial output folder of side B (e.g. the main grid); may be the same as a.
        n_train: training-set size of the runs to compare ("all" for the whole train part).
        fusion_a: FD mode of side A.
        fusion_b: FD mode of side B, e.g. none (default: fusion_a).
        arch_a: layer layout of side A (v2 or paper; default: any).
        arch_b: layer layout of side B (v2 or paper; default: any).
        seed: compare the runs of this seed only (default: each side averaged over all its seeds).
    """
    from ..trial import compare_folders

    n = None if str(n_train) == "all" else int(n_train)
    return compare_folders(Path(a), Path(b), n, str(fusion_a), str(fusion_b or fusion_a), arch_a, arch_b,
                           None if seed is None else int(seed))


def contrast(task: str = "red_nucleus", n: int = 6) -> Dict[str, float]:
    """How far each intensity scaling sets the target apart from the tissue around it, on phantoms of a task.

    Args:
        task: red_nucleus, dentate_nucleus, spleen, heart or hippocampus.
        n: phantoms to average over (mean scaled target minus mean scaled surroundings).
    """
    from ..lab.contrast import phantom_contrast

    return {mode: round(value, 3) for mode, value in phantom_contrast(task, n=int(n)).items()}


COMMANDS: Dict[str, Callable] = {"demo": demo, "phantoms": phantoms, "split": split, "figure": figure, "curve": curve,
                                 "sweep": sweep, "export": export, "compare": compare, "bench": bench,
                                 "contrast": contrast, "overlay": MODEL_COMMANDS["overlay"],
                                 "recipe": MODEL_COMMANDS["recipe"], "release": MODEL_COMMANDS["release"],
                                 "trial": trial, "onnx": MODEL_COMMANDS["onnx"],
                                 "bundles build": MODEL_COMMANDS["bundles build"],
                                 "bundles list": MODEL_COMMANDS["bundles list"]}
