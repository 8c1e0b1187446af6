"""Command line: ``python -m freq_transforms <command> --help``.

Commands: ``demo`` (the main job on phantoms), ``phantoms``, ``split``, ``figure``, ``sweep``, ``bench``,
``release``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import fire

from .data import DataError, make_split



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
    from .phantoms import write_phantom_dataset

    grid = [int(s) for s in _as_list(shape)] if shape is not None else None
    return str(write_phantom_dataset(task, out, n, seed, grid, overwrite))


def split(dataset_dir: str, split_ratio: Sequence[float] = (166, 42, 52), split_seed: int = 0, seed: int = 0,
          n_train: Optional[int] = None, output_dir: Optional[str] = None, folds: Optional[int] = None,
          fold: int = 0) -> Dict[str, int]:
    """Show (and with ``output_dir`` write) the train/val/test split a bundle would use (``folds``/``fold``:
    one fold of a cross-validation)."""
    parts = make_split(dataset_dir, [float(r) for r in _as_list(split_ratio)], split_seed, seed, n_train, output_dir,
                       folds=folds, fold=fold)
    return {name: len(items) for name, items in parts.items()}


def figure(image: str, out: str = "frequency_split.png", cutoffs: Sequence[float] = (0.05, 0.1, 0.25),
           mask: str = "box", centered: bool = True) -> str:
    """PNG of an image's middle slice and its low/high parts for a few cutoffs."""
    from .plots import frequency_split_figure

    return str(frequency_split_figure(image, out, [float(c) for c in _as_list(cutoffs)], mask, centered))


def demo(out: str = "demo_output", n_cases: int = 20, epochs: int = 40, val_interval: int = 5,
         fusions: Optional[Sequence[str]] = None, seed: int = 0, bundle: Optional[str] = None) -> str:
    """The main job: phantoms -> train the hippocampus bundle with each fusion -> evaluate -> table + PNG.

    Args:
        out: output folder (phantoms, one run folder per fusion mode, results.md, demo.png).
        n_cases: phantom cases (split into train/val/test in the paper's proportions).
        epochs, val_interval: training length (minutes on 2 CPU cores with the defaults).
        fusions: FD modes to compare, e.g. none,early,late (default: none and the bundle's default FD mode).
        seed: training seed.
        bundle: bundle folder (default: the hippocampus bundle installed with the package).
    """
    from .demo import run_demo

    bundle_dir = Path(bundle) if bundle else bundle_dir_of("hippocampus_mri_fd_segmentation")
    return str(run_demo(Path(out), bundle_dir, n_cases, epochs, val_interval, _as_list(fusions) if fusions else None,
                        seed))


def release(bundles: str = "bundles", out: str = "dist", base_url: Optional[str] = None,
            weights_url: Optional[str] = None) -> Dict[str, Dict[str, str]]:
    """Write zoo-style archives ``<out>/<name>_v<version>.zip`` and ``<out>/model_info.json``.

    Args:
        bundles: folder of bundles.
        out: output folder (an existing model_info.json is merged, older versions stay listed).
        base_url: where the zips will be published, e.g. a GitHub release's download URL.
        weights_url: host models/ apart (a large_files.yml is shipped instead), e.g. a Hugging Face repo.
    """
    from .release import release as make_release

    return make_release(bundles, out, base_url, weights_url)


def bench(repeats: int = 7, train_size: Sequence[int] = (64, 64, 48), out: Optional[str] = None,
          bundle: Optional[str] = None) -> None:
    """Measure FD against the plain backbone side by side: train step, memory, inference, FFT, loading.

    Args:
        repeats: repeats per measurement (medians are printed).
        train_size: network input size of the train-step measurement.
        out: also write the Markdown report there (e.g. docs/benchmarks.md).
        bundle: bundle whose preprocessing is timed (default: the hippocampus bundle installed with the package).
    """
    from .bench import run_benchmarks
    from .atomic import atomic_write_text

    bundle_dir = Path(bundle) if bundle else bundle_dir_of("hippocampus_mri_fd_segmentation")
    size = [int(s) for s in _as_list(train_size)]
    report = run_benchmarks(repeats, size, bundle_dir if bundle_dir.is_dir() else None)
    if out:
        command = f"python -m freq_transforms bench --repeats {repeats} --train_size {','.join(map(str, size))}"
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
        n_train: training-set sizes; "all" for the whole train part.
        fusion: FD modes.
        seeds: training seeds.
        epochs: epochs per run.
        test_dir: score an external MSD-layout test set instead of the bundle's test split.
        overrides: more bundle overrides, e.g. "{'val_interval': 10, 'cutoff': 0.2}".
        arch: FD layer layouts to run each FD mode with, e.g. v2,paper (default: the bundle's arch).
        folds: K-fold cross-validation (every case tested once; duplicates of one image kept together).
    """
    from .sweep import run_sweep

    sizes = [None if str(n) == "all" else int(n) for n in _as_list(n_train)]
    return str(run_sweep(Path(bundle), dataset_dir, Path(out), sizes, [str(f) for f in _as_list(fusion)],
                         [int(s) for s in _as_list(seeds)], int(epochs), test_dir, dict(overrides or {}),
                         [str(a) for a in _as_list(arch)] if arch else None, int(folds) if folds else None))


def export(out: str, dest: str, task: Optional[str] = None) -> str:
    """Copy a sweep's per-run records (per-case metrics, splits, validation Dice; no weights) to dest and
    write summary.csv, summary.md and dice_vs_ntrain.png there.

    Args:
        out: the sweep's output folder.
        dest: folder to create or update, e.g. docs/results/hippocampus_grid.
        task: name in the table's task column (default: dest's name).
    """
    from .sweep import export_records

    return str(export_records(Path(out), Path(dest), task or Path(dest).name))


def compare(a: str, b: str, n_train: str = "4", fusion_a: str = "early", fusion_b: Optional[str] = None,
            arch_a: Optional[str] = None, arch_b: Optional[str] = None, seed: Optional[int] = None) -> str:
    """Paired bootstrap CI of mean test Dice between two sweeps' runs on the same test cases (A minus B).

    Args:
        a, b: sweep output folders (e.g. an ablation sweep and the main grid).
        n_train: training-set size of the runs to compare ("all" for the full train part).
        fusion_a, fusion_b: FD mode on each side (fusion_b defaults to fusion_a).
        arch_a, arch_b: layer layout on each side (v2 or paper; default: any), e.g. to compare layouts in one sweep.
        seed: compare the runs of this seed only (default: each side averaged over all its seeds).
    """
    from .sweep import compare_runs

    n = None if str(n_train) == "all" else int(n_train)
    return compare_runs(Path(a), Path(b), n, str(fusion_a), str(fusion_b or fusion_a), arch_a, arch_b,
                        None if seed is None else int(seed))


def contrast(task: str = "red_nucleus", n: int = 6) -> Dict[str, float]:
    """How far each intensity scaling sets the target apart from the tissue around it, on phantoms of a task
    (mean scaled target minus mean scaled surroundings, averaged over n phantoms)."""
    from .intensity import phantom_contrast

    return {mode: round(value, 3) for mode, value in phantom_contrast(task, n=int(n)).items()}


class Bundles:
    """The bundles' source (bundle_source/: JSON configs, a Markdown README template, one task file per bundle)."""

    def build(self, check: bool = False, source: str = "bundle_source", out: str = "bundles") -> str:
        """Write bundles/<name>/ for every bundle_source/tasks/<name>.json (run from the repository root).

        Args:
            check: only report the files that differ from what the source produces (exit 1 if any).
            source: the source folder.
            out: the folder of the bundles.
        """
        from .bundle_build import build_bundles

        changed = build_bundles(Path(source), Path(out), check=bool(check))
        if check and changed:
            print("out of date (run python -m freq_transforms bundles build):\n  " + "\n  ".join(changed))
            sys.exit(1)
        return f"{len(changed)} file(s) {'differ' if check else 'written'}"


COMMANDS = {"demo": demo, "contrast": contrast, "bundles": Bundles(), "export": export, "compare": compare, "bench": bench, "sweep": sweep, "phantoms": phantoms, "split": split, "figure": figure, "release": release}


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point; bad input ends with a one-line ``error: ...`` and exit code 2."""
    try:
        fire.Fire(COMMANDS, command=argv, name="python -m freq_transforms")
    except (DataError, ValueError, FileExistsError, FileNotFoundError) as err:  # ReleaseError is a ValueError
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
