"""The trial's runs on Ray (``trial --workers``, ``--ray_address``) on hippocampus phantoms: the serial trial's numbers,
resume across the two modes, a killed worker's run retried to the same result on a Ray head the test starts, and
one line where Ray is missing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from freq_transforms.lab.phantoms import write_phantom_dataset
from freq_transforms.trial import TrialError, run_trial
from freq_transforms.trial.execution import Execution
from test_trial import HIPPO, HIPPO_SMALL

PLAN = dict(n_train=[2], seeds=[0, 1], fusions=["none", "early"], overrides={**HIPPO_SMALL, "epochs": 12},
            estimate=False)
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return write_phantom_dataset("hippocampus", tmp_path_factory.mktemp("hippo") / "data", n=12, seed=3,
                                 progress=False)


@pytest.fixture(scope="module")
def serial(cases, tmp_path_factory):
    """The plan run one after another in this process, one thread per run: the numbers every mode must give."""
    out = tmp_path_factory.mktemp("serial") / "trial"
    run_trial(HIPPO, cases, out, execution=Execution(cpus_per_run=1), **PLAN)
    return _runs(out)


def _runs(out: Path) -> dict:
    return {f"fold{r['fold']}_n{r['n']}_s{r['seed']}_{r['fusion']}": r
            for r in json.loads((out / "trial.json").read_text())["runs"]}


def _assert_same(mine: dict, theirs: dict) -> None:
    assert mine["train_cases"] == theirs["train_cases"]
    for part in ("val", "test"):
        assert sorted(mine[part]) == sorted(theirs[part])
        for case, scores in theirs[part].items():
            for metric in ("dice", "hd95"):
                assert mine[part][case][metric] == pytest.approx(scores[metric], abs=TOLERANCE), (case, metric)


def test_workers_without_ray_installed_stop_in_one_line_naming_the_extra(cases, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError, as where it is not installed
    with pytest.raises(TrialError, match=r'^--workers and --ray_address run the trial on Ray, which is not installed: '
                                         r'pip install "freq_transforms\[ray\]"$'):
        run_trial(HIPPO, cases, tmp_path / "trial", execution=Execution(workers=2), **PLAN)
    assert not (tmp_path / "trial").exists()  # nothing trained, nothing written


@pytest.mark.parametrize("given, said", [(dict(workers=0), "--workers must be a positive integer, got 0"),
                                         (dict(cpus_per_run=1.5), "--cpus_per_run must be a positive integer, got 1.5")])
def test_bad_execution_options_stop_in_one_line(given, said):
    with pytest.raises(TrialError, match=f"^{said}$"):
        Execution(**given)


@pytest.mark.slow
def test_workers_give_the_serial_numbers_and_finish_a_trial_started_serially(cases, serial, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "trial"
    run_trial(HIPPO, cases, out, only="0", execution=Execution(cpus_per_run=1), **PLAN)  # started serially
    first = out / "runs" / "fold0_n2_s0_none" / "result.json"
    kept = first.stat().st_mtime
    lines = []
    run_trial(HIPPO, cases, out, execution=Execution(workers=2, cpus_per_run=1), log=lines.append, **PLAN)
    assert "4 runs (3 to do)" in lines[0]
    assert first.stat().st_mtime == kept  # the serial run is not run again
    mine = _runs(out)
    assert sorted(mine) == sorted(serial)
    for name, theirs in serial.items():
        _assert_same(mine[name], theirs)
    assert (out / "trial.md").is_file() and (out / "trial.png").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["plan.json", "runs", "trial.json", "trial.md", "trial.png"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"no Ray head on port {port} after {seconds} s")


def _parent_of_training(run_dir: Path) -> int:
    """The process (the Ray worker) whose child is the bundle training in ``run_dir``; 0 while there is none."""
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "monai.bundle" in command and str(run_dir / "bundle") in command:
                return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return 0


def _kill_worker_mid_training(run_dir: Path, killed: list) -> None:
    """Once the run has saved an epoch (its ``models/resume.pt``), SIGKILL the Ray worker running it."""
    end = time.time() + 300
    while time.time() < end and not killed:
        if (run_dir / "bundle" / "models" / "resume.pt").is_file():
            worker = _parent_of_training(run_dir)
            if worker:
                os.kill(worker, signal.SIGKILL)
                killed.append(worker)
                return
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")
def test_a_killed_worker_is_retried_and_resumes_to_the_same_result_on_a_head_the_test_starts(cases, serial,
                                                                                              tmp_path, monkeypatch):
    pytest.importorskip("ray")
    port = _free_port()
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    # Ray's token authentication off on both sides: `ray start` turns it on, a driver joining by address does not
    # unless told (docs/trial.md); the test's head is on 127.0.0.1 and lives only for the test
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    head = subprocess.Popen([ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
                             "--include-dashboard=false", "--disable-usage-stats", "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_port(port, 120)
        out, killed = tmp_path / "trial", []
        run_dir = out / "runs" / "fold0_n2_s0_none"
        watcher = threading.Thread(target=_kill_worker_mid_training, args=(run_dir, killed), daemon=True)
        watcher.start()
        plan = {**PLAN, "seeds": [0], "fusions": ["none"]}
        run_trial(HIPPO, cases, out, execution=Execution(ray_address=f"127.0.0.1:{port}", cpus_per_run=1), **plan)
        watcher.join(timeout=1)
        assert killed, "the run finished before its worker could be killed"
        assert "resumed from" in (run_dir / "train.log").read_text()  # the retry continued from resume.pt
        _assert_same(_runs(out)["fold0_n2_s0_none"], serial["fold0_n2_s0_none"])
    finally:
        head.send_signal(signal.SIGTERM)  # the head stopped by its own PID, not `ray stop` (other Rays may run)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


def test_a_run_that_fails_is_reported_and_the_others_go_on(cases, tmp_path, monkeypatch):
    """One run stops for a reason of its own: the trial runs the others, lists it in trial.md and trial.json, and
    then stops in one line; started again, it runs only that run."""
    import freq_transforms.trial.execution as execution

    ran = []

    def fake(wiring, run, cases, run_dir, dataset_dir, classes, overrides, threads):
        ran.append(run.name)
        if run.name == "fold0_n2_s0_early" and len(ran) < 5:
            raise TrialError(f"the bundle stopped (RuntimeError: out of memory); its log: {run_dir / 'train.log'}")
        scores = {case: {"dice": [0.8, 0.7], "hd95": [2.0, 3.0]} for case in ("a", "b")}
        result = {"n": run.n, "seed": run.seed, "fusion": run.fusion, "fold": run.fold, "train_seconds": 1.0,
                  "infer_seconds": 1.0, "val": scores, "test": scores, "train_cases": ["x", "y"]}
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "result.json").write_text(json.dumps(result))
        return result

    monkeypatch.setattr(execution, "run_and_score", fake)
    out = tmp_path / "trial"
    with pytest.raises(TrialError, match=r"^1 of 4 runs failed, e\.g\. fold0_n2_s0_early: the bundle stopped "
                                         r"\(RuntimeError: out of memory\); its log: .*train\.log \(trial\.md "):
        run_trial(HIPPO, cases, out, execution=Execution(cpus_per_run=1), **PLAN)
    assert sorted(ran) == sorted(["fold0_n2_s0_none", "fold0_n2_s0_early", "fold0_n2_s1_none", "fold0_n2_s1_early"])
    report = json.loads((out / "trial.json").read_text())
    assert list(report["failed"]) == ["fold0_n2_s0_early"] and len(report["runs"]) == 3
    assert "- `fold0_n2_s0_early`: the bundle stopped (RuntimeError: out of memory)" in (out / "trial.md").read_text()
    run_trial(HIPPO, cases, out, execution=Execution(cpus_per_run=1), **PLAN)  # again: only the failed run
    assert ran[4:] == ["fold0_n2_s0_early"] and not json.loads((out / "trial.json").read_text())["failed"]
