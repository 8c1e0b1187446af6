"""Where a trial's runs go: one after another in this process (the default), or as Ray tasks on a local Ray or a
cluster (``--workers``, ``--ray_address``).

Ray schedules the runs, places each on a node with the CPUs (and a GPU, where the cluster has them) it asks for,
and retries a run whose worker died. What Ray does not do is what a run is: each task builds its own
:class:`~.wiring.BundleWiring` from the bundle folder and calls :func:`~.one_run.run_and_score`, which writes only
that run's folder; the driver keeps the plan and writes the report. A retried run continues from its bundle's
``models/resume.pt``, and a run that fails for a reason of its own (the bundle stops) is not retried: its one-line
error goes to the report and the other runs go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from tqdm import tqdm

from .. import __version__
from .one_run import TrialCases, run_and_score
from .plan import Run
from .wiring import BundleWiring, TrialError

__all__ = ["Execution", "RunJob", "run_jobs", "RAY_INSTALL", "FAILED"]

RAY_INSTALL = 'pip install "freq_transforms[ray]"'
RETRIES = 3  # Ray's retries of a run whose worker process died (a node lost, a kill, out of memory)
FAILED = "failed"  # the outcome key of a run that failed: {"failed": "<one line>"}


@dataclass(frozen=True)
class Execution:
    """How the trial runs its runs.

    Args:
        workers: runs at a time on a local Ray started for the trial (with ``ray_address``: at most this many
            at a time on that cluster).
        ray_address: an existing Ray cluster to join: ``auto``, ``host:port`` or ``ray://host:port``.
        cpus_per_run: CPU threads of each run (``OMP_NUM_THREADS``), and the CPUs each Ray task asks for (1 where
            not given). ``None`` without Ray: the runs inherit this process's threads.
    """

    workers: Optional[int] = None
    ray_address: Optional[str] = None
    cpus_per_run: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ("workers", "cpus_per_run"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise TrialError(f"--{name} must be a positive integer, got {value!r}")

    @property
    def on_ray(self) -> bool:
        return self.workers is not None or self.ray_address is not None

    @property
    def threads(self) -> Optional[int]:
        return self.cpus_per_run or (1 if self.on_ray else None)

    def runs_at_once(self) -> Optional[int]:
        """How many runs go side by side: 1 here, ``workers`` on Ray, ``None`` where the cluster decides."""
        return self.workers if self.on_ray else 1

    def check(self) -> None:
        """Stops in one line where Ray is asked for and not installed (before anything is trained)."""
        if self.on_ray:
            _ray()


@dataclass(frozen=True)
class RunJob:
    """Everything one run needs, as plain values a Ray task can carry to another node."""

    bundle_root: Path
    run: Run
    cases: TrialCases
    run_dir: Path
    dataset_dir: Path
    classes: int
    overrides: Dict[str, Any]
    threads: Optional[int]
    version: str = __version__


def run_job(job: RunJob, wiring: Optional[BundleWiring] = None) -> Dict[str, Any]:
    """Run ``job``: its result, or ``{"failed": "<one line>"}`` where the run stopped for a reason of its own."""
    from ..bundle.configs import Bundle
    from .wiring import wire_bundle

    if job.version != __version__:
        return {FAILED: f"this node has freq_transforms {__version__}, the trial's driver {job.version}: install "
                        "the same version on every node"}
    try:
        wiring = wiring or wire_bundle(Bundle(job.bundle_root))
        return run_and_score(wiring, job.run, job.cases, job.run_dir, job.dataset_dir, job.classes, job.overrides,
                             job.threads)
    except TrialError as err:
        return {FAILED: str(err)}


def run_jobs(jobs: List[RunJob], execution: Execution, wiring: BundleWiring,
             on_done: Callable[[RunJob, Dict[str, Any]], None]) -> None:
    """Run every job, here one after another or on Ray; ``on_done(job, outcome)`` as each finishes (the progress
    bar counts finished runs, wherever they ran)."""
    with tqdm(total=len(jobs), desc="trial", unit="run") as bar:
        if execution.on_ray:
            _on_ray(jobs, execution, on_done, bar)
            return
        for job in jobs:
            on_done(job, run_job(job, wiring))
            bar.update()


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise TrialError(f"--workers and --ray_address run the trial on Ray, which is not installed: {RAY_INSTALL}"
                         ) from None
    return ray


def _connect(ray: Any, execution: Execution) -> bool:
    """Start a local Ray or join the cluster; ``True`` where this call started the connection (and shuts it)."""
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "configure_logging": False}
    if execution.ray_address is not None:
        ray.init(address=execution.ray_address, **quiet)
    else:  # "local": a Ray of its own, never a cluster this machine happens to have started
        ray.init(address="local", num_cpus=execution.workers * (execution.cpus_per_run or 1),
                 include_dashboard=False, **quiet)
    return True


def _outcome(ray: Any, ref: Any) -> Dict[str, Any]:
    """The task's outcome; a task that raised, or whose worker died beyond the retries, as one failed line."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        return {FAILED: f"{type(err).__name__}: {lines[-1] if lines else 'no message'}"}


def _on_ray(jobs: List[RunJob], execution: Execution, on_done: Callable[[RunJob, Dict[str, Any]], None],
            bar: tqdm) -> None:
    ray = _ray()
    started = _connect(ray, execution)
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0  # Ray sets CUDA_VISIBLE_DEVICES per task
        task = ray.remote(num_cpus=execution.threads, num_gpus=gpus, max_retries=RETRIES,
                          retry_exceptions=False)(run_job)
        queue, pending = list(jobs), {}
        limit = execution.workers or len(jobs)
        while queue or pending:
            while queue and len(pending) < limit:
                job = queue.pop(0)
                pending[task.remote(job)] = job
            [ready], _ = ray.wait(list(pending), num_returns=1)
            on_done(pending.pop(ready), _outcome(ray, ready))
            bar.update()
    finally:
        if started:
            ray.shutdown()
