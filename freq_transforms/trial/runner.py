"""``python -m freq_transforms trial``: does FD help on my data? One paired answer, on any bundle.

The trial owns the split (:mod:`.plan`); the bundle owns the rest (:mod:`.wiring`, :mod:`.one_run`): its
transforms, budget, model selection on validation and inference. Every fusion gets the same cases, seeds and
budget; ``none`` is the bundle as it is, ``early``/``late`` add the FD overlay (or set the fusion of a bundle
whose network is FD already). Runs that finished are kept in ``O/runs/<name>/result.json``: started again, the
trial runs only what is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..atomic import atomic_write_text
from ..bundle.configs import Bundle
from ..bundle.overlay import OverlayError, write_overlay
from .execution import FAILED, Execution, RunJob, run_jobs
from .one_run import RESULT_FILE, TrialCases, fusion_settings, run_and_score, train_run
from .bundle_split import bundle_own_splits, split_keys
from .plan import Run, TrialSplit, describe, largest, sorted_sizes, trial_runs, trial_splits
from .report import VerdictRules, write_report
from .scoring import label_classes
from .wiring import BundleWiring, Item, TrialError, bundle_cases, keys_of, wire_bundle

__all__ = ["run_trial", "TrialError"]


def _label_key(cases: List[Item], image_keys: List[str]) -> str:
    others = [k for k in cases[0] if k not in image_keys and isinstance(cases[0][k], str)]
    named = [k for k in others if k.lower() in ("label", "seg", "lbl", "mask")]
    if not (named or others):
        raise TrialError(f"the bundle's cases have no label key besides the image ({sorted(cases[0])})")
    return (named or others)[0]


def _check_overrides(wiring: BundleWiring, overrides: Dict[str, Any]) -> None:
    """Every override names a key of the bundle's train or inference configs (one line with the nearest if not):
    a misspelt budget key would otherwise train with the bundle's default."""
    from ..bundle.overrides import unknown_override

    keys = {**wiring.bundle.parser(wiring.inference_configs).get(),
            **wiring.bundle.parser(wiring.train_configs).get()}
    for key in overrides:
        problem = unknown_override(key, keys)
        if problem is not None:
            raise TrialError(f"--overrides: {problem.lstrip('-')}")


def _check_fusions_wrap(wiring: BundleWiring, fusions: Sequence[str], scratch: Path) -> None:
    """A bundle the overlay refuses stops here, in one line, before any training."""
    parser = wiring.bundle.parser(wiring.train_configs)
    if fusion_settings(parser, "none"):
        return  # this project's bundles set their own fusion
    for fusion in [f for f in fusions if f != "none"]:
        copy = scratch / f"overlay_{fusion}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(wiring.bundle.root / "configs", copy / "configs")
        if (wiring.bundle.root / "scripts").is_dir():
            shutil.copytree(wiring.bundle.root / "scripts", copy / "scripts")
        try:
            write_overlay(copy, fusion=fusion, force=True)
        except OverlayError as err:
            raise TrialError(f"fusion {fusion} cannot be tried on {wiring.bundle.root.name}: {err}") from None


def _load_results(out: Path, runs: Sequence[Run]) -> Dict[str, Dict[str, Any]]:
    done = {}
    for run in runs:
        path = out / "runs" / run.name / RESULT_FILE
        if path.is_file():
            done[run.name] = json.loads(path.read_text())
    return done


def _last_epoch_seconds(log: Path) -> Optional[float]:
    """The trainer's last epoch time, from ignite's ``... Trainer ... Epoch[2] Complete. Time taken: 00:00:01.234``
    log lines (the first epoch carries warm-up: caching, first allocations)."""
    times = []
    for line in log.read_text(errors="replace").splitlines() if log.is_file() else []:
        found = re.search(r"Trainer.*Epoch\[\d+\] Complete\. Time taken: (\d+):(\d+):([\d.]+)", line)
        if found:
            hours, minutes, seconds = found.groups()
            times.append(3600 * int(hours) + 60 * int(minutes) + float(seconds))
    return times[-1] if times else None


def _budget(wiring: BundleWiring, overrides: Dict[str, Any]) -> Tuple[int, str]:
    """The epochs each run trains, and the key that sets them as ``--overrides`` names it: the first key the
    trainer's ``max_epochs`` refers to (where that is a component, as this project's ``settings``, the key its
    ``epochs`` entry refers to), else that id itself."""
    parser = wiring.bundle.parser(wiring.train_configs, keys_of(overrides, wiring.bundle.parser(wiring.train_configs)))
    raw = parser.get(wiring.max_epochs)
    named = re.search(r"@([\w#]+)", raw) if isinstance(raw, str) else None
    key = named.group(1) if named else wiring.max_epochs
    component = parser.get(key)
    if isinstance(component, dict) and isinstance(component.get("epochs"), str):
        key = component["epochs"].lstrip("$@")
    return int(parser.get_parsed_content(wiring.max_epochs)), key


def _estimate(wiring: BundleWiring, split: TrialSplit, out: Path, dataset_dir: Path, keys: tuple,
              overrides: Dict[str, Any], first: Run, runs: int, done: Dict[str, Dict[str, Any]],
              execution: Execution, log=print) -> Tuple[float, str]:
    """About how long the missing runs take, in wall seconds and in words: from the runs done, else from one timed
    epoch (its run's start-up once per run, the epoch's time for every further epoch); runs side by side divide
    it (a cluster that decides how many: not divided, and said)."""
    at_once = execution.runs_at_once()
    side = (f"; {at_once} runs at a time" if at_once and at_once > 1 else
            "; one run at a time (the cluster may run several)" if at_once is None else "")
    waves = -(-runs // at_once) if at_once else runs
    if done:
        per_run = sum(r["train_seconds"] + r["infer_seconds"] for r in done.values()) / len(done)
        return per_run * waves, (f"about {per_run * waves / 60:.0f} min ({per_run:.0f} s per run, from the runs "
                                 f"done{side})")
    epochs = _budget(wiring, overrides)[0]
    cases = TrialCases(split.train(first.n, first.seed), split.val, split.test, *keys)
    log(f"timing one epoch of {first.name} (n = {len(cases.train)}) for the estimate ...")
    total = train_run(wiring, first, cases, out / "estimate", dataset_dir, overrides, max_epochs=1,
                      threads=execution.threads)
    epoch = _last_epoch_seconds(out / "estimate" / "train.log") or total
    shutil.rmtree(out / "estimate", ignore_errors=True)
    per_run = total + (epochs - 1) * epoch
    return per_run * waves, (f"about {per_run * waves / 60:.0f} min ({epochs} epochs per run at about {epoch:.1f} s "
                             f"each at n = {len(cases.train)}, from one timed epoch of {total:.0f} s with start-up; "
                             f"inference comes on top{side})")


def _check_hours(seconds: float, max_hours: Optional[float], budget_key: str, epochs: int) -> None:
    """A trial estimated above ``max_hours`` stops here, in one line, before any of its runs."""
    if max_hours is not None and seconds > 3600 * max_hours:
        raise TrialError(f"the trial would take about {seconds / 3600:.1f} h, above --max_hours {max_hours:g}: pass "
                         f"--yes to run it anyway, or lower the budget, e.g. --overrides \"{{'{budget_key}': "
                         f"{max(1, int(epochs * 3600 * max_hours / seconds))}}}\"")


def _splits(wiring: BundleWiring, dataset_dir: Path, scratch: Path, n_train: Sequence[Optional[int]],
            seeds: Sequence[int], folds: Optional[int], overrides: Dict[str, Any], test_dir: Optional[Path],
            split: str) -> tuple:
    """The cases, their keys, the splits and the test cases of ``--test_dir``, by the trial's or the bundle's
    own split."""
    if split not in ("trial", "bundle"):
        raise TrialError(f"split must be trial or bundle, got {split!r}")
    cases, image_keys = bundle_cases(wiring, dataset_dir, scratch, overrides)
    test_cases = bundle_cases(wiring, test_dir.resolve(), scratch, overrides)[0] if test_dir else None
    keys = (image_keys, _label_key(cases, image_keys))
    if split == "bundle":
        splits = bundle_own_splits(wiring, dataset_dir, scratch, n_train, seeds, folds, overrides, test_cases)
    else:
        splits = trial_splits(cases, image_keys[0], n_train, seeds, folds, test_cases)
    return cases, keys, splits, test_cases


def _layout(wiring: BundleWiring, overrides: Dict[str, Any]) -> Optional[str]:
    """This project's bundles' FD layer layout (their ``arch`` key), recorded so ``compare`` can pair by it."""
    parser = wiring.bundle.parser(wiring.train_configs, keys_of(overrides, wiring.bundle.parser(wiring.train_configs)))
    return str(parser.get_parsed_content("arch")) if "arch" in parser.get() else None


def run_trial(bundle_root: Path, dataset_dir: Path, out: Path, n_train: Sequence[Optional[int]] = (4, 8),
              seeds: Sequence[int] = (0, 1, 2), fusions: Sequence[str] = ("none", "early", "late"),
              folds: Optional[int] = None, overrides: Optional[Dict[str, Any]] = None,
              test_dir: Optional[Path] = None, estimate: bool = True, split: str = "trial",
              log=print, rules: VerdictRules = VerdictRules(), max_hours: Optional[float] = None,
              only: Optional[str] = None, execution: Execution = Execution()) -> Dict[str, Any]:
    """Run the trial (resumable) and write ``out/trial.md``, ``trial.json`` and ``trial.png``; return the
    summary. ``split``: ``trial`` (the trial splits the cases) or ``bundle`` (the bundle's own ``n_train``/``seed``
    keys draw them, :mod:`.bundle_split`); ``rules`` word the verdicts. The plan is logged before anything is
    trained or timed; with ``estimate``, one epoch is timed and a trial estimated above ``max_hours`` stops.
    ``only``: one run of the plan (its name, or its index in the plan as a scheduler's array task id gives it),
    run alone and not reported (a call without it reports when every run is done); several such calls may share
    ``out``. ``execution``: one run after another here, or on Ray (:mod:`.execution`). Raises :class:`TrialError`
    (one line) before any training where the bundle, the data or the plan cannot work, and after the report where
    runs failed (the others are reported; the same call runs the failed ones again)."""
    bundle_root, dataset_dir, out = bundle_root.resolve(), dataset_dir.resolve(), out.resolve()
    for name, folder in (("dataset_dir", dataset_dir), ("test_dir", test_dir)):
        if folder is not None and not folder.is_dir():
            raise TrialError(f"{name} {folder} does not exist or is not a folder")
    overrides = dict(overrides or {})
    execution.check()
    out.mkdir(parents=True, exist_ok=True)
    scratch = out / ("scratch" if only is None else f"scratch-{os.getpid()}")  # --only jobs run side by side
    wiring = wire_bundle(Bundle(bundle_root))
    _check_overrides(wiring, overrides)
    _check_fusions_wrap(wiring, fusions, scratch)
    cases, keys, splits, test_cases = _splits(wiring, dataset_dir, scratch, n_train, seeds, folds, overrides,
                                              test_dir, split)
    runs = trial_runs(splits, n_train, seeds, fusions)
    classes = label_classes([Path(str(c[keys[1]])) for c in cases + (test_cases or [])])
    plan = {"bundle": bundle_root.name, "cases": len(cases), "parts": describe(splits), "split": split,
            "n_train": sorted_sizes(n_train), "seeds": list(seeds), "fusions": list(fusions), "runs": len(runs),
            "classes": classes, "overrides": overrides, "layout": _layout(wiring, overrides),
            "wiring": {"train": wiring.train_data, "val": wiring.val_data, "inference": wiring.infer_data},
            "verdict": asdict(rules)}
    done = _load_results(out, runs)
    missing = [r for r in runs if r.name not in done]
    first = Run(largest(n_train), seeds[0], "none", splits[0].fold)
    first_overrides = _run_overrides(overrides, first, folds, split)
    epochs, budget_key = _budget(wiring, first_overrides)
    log(f"trial of {bundle_root.name}: {len(runs)} runs ({len(missing)} to do), {len(cases)} cases; per fold "
        f"pool {plan['parts']['pool']}, validation {plan['parts']['val']}, test {plan['parts']['test']}; "
        f"{epochs} epochs per run ({budget_key})")
    if only is not None:
        job = _job(_pick(runs, only), bundle_root, splits, out, dataset_dir, keys, classes, overrides, folds, split,
                   execution)
        return _run_only(job, wiring, plan, done, scratch, log)
    if estimate and missing:
        seconds, how_long = _estimate(wiring, splits[0], out, dataset_dir, keys, first_overrides, first,
                                      len(missing), done, execution, log)
        log(how_long)
        _check_hours(seconds, max_hours, budget_key, epochs)
    atomic_write_text(out / "plan.json", json.dumps(plan, indent=1))
    failed: Dict[str, str] = {}

    def on_done(job: RunJob, outcome: Dict[str, Any]) -> None:
        if FAILED in outcome:
            failed[job.run.name] = outcome[FAILED]
            log(f"{job.run.name} failed: {outcome[FAILED]}")
        else:
            done[job.run.name] = outcome

    run_jobs([_job(run, bundle_root, splits, out, dataset_dir, keys, classes, overrides, folds, split, execution)
              for run in missing], execution, wiring, on_done)
    shutil.rmtree(scratch, ignore_errors=True)
    summary = write_report(out, [done[r.name] for r in runs if r.name in done], plan, failed)
    for comparison in summary["comparisons"]:
        log(comparison["verdict"])
    if failed:
        name, line = next(iter(failed.items()))
        raise TrialError(f"{len(failed)} of {len(runs)} runs failed, e.g. {name}: {line} (trial.md reports the "
                         "others; the same command runs the failed ones again)")
    return summary


def _job(run: Run, bundle_root: Path, splits: Sequence[TrialSplit], out: Path, dataset_dir: Path, keys: tuple,
         classes: int, overrides: Dict[str, Any], folds: Optional[int], split: str, execution: Execution) -> RunJob:
    """One run of the plan as a job: its cases in the bundle's keys, its overrides, its folder."""
    fold = next(s for s in splits if s.fold == run.fold)
    cases = TrialCases(fold.train(run.n, run.seed), fold.val, fold.test, *keys)
    return RunJob(bundle_root, run, cases, out / "runs" / run.name, dataset_dir, classes,
                  _run_overrides(overrides, run, folds, split), execution.threads)


def _pick(runs: Sequence[Run], only: str) -> Run:
    """The run ``only`` names: its name, or its 0-based index in the plan."""
    text = str(only).strip()
    if text.isdigit() and int(text) < len(runs):
        return runs[int(text)]
    found = [r for r in runs if r.name == text]
    if not found:
        raise TrialError(f"--only {only!r} is no run of this plan: give a name ({', '.join(r.name for r in runs[:4])}"
                         f"{', ...' if len(runs) > 4 else ''}) or an index 0..{len(runs) - 1}")
    return found[0]


def _run_only(job: RunJob, wiring: BundleWiring, plan: Dict[str, Any], done: Dict[str, Dict[str, Any]],
              scratch: Path, log=print) -> Dict[str, Any]:
    """Run ``job`` alone, here (unless its result is there), write the plan, and report nothing: other runs may be
    running elsewhere on the same ``out``."""
    atomic_write_text(job.run_dir.parents[1] / "plan.json", json.dumps(plan, indent=1))
    name = job.run.name
    if name not in done:
        done[name] = run_and_score(wiring, job.run, job.cases, job.run_dir, job.dataset_dir, job.classes,
                                   job.overrides, job.threads)
    shutil.rmtree(scratch, ignore_errors=True)
    log(f"{name} done; {len(done)} of {plan['runs']} runs of the plan are done (the same command without "
        "--only reports once all are)")
    return {"rows": [], "comparisons": [], "only": name, "done": len(done), "runs": plan["runs"]}


def _run_overrides(overrides: Dict[str, Any], run: Run, folds: Optional[int], split: str) -> Dict[str, Any]:
    """The user's overrides, and on the bundle's own split the keys that draw ``run``'s lists."""
    return {**overrides, **split_keys(run, folds)} if split == "bundle" else overrides
