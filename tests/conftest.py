"""Session-wide test settings."""

import os
from pathlib import Path

import pytest


def _share_the_cores_between_workers() -> None:
    """The cores shared out as OpenMP threads between pytest-xdist workers, before torch is imported
    (subprocesses inherit it).

    Two workers with torch's default pool each (a thread per core) spin against each other: on the 2-core machine,
    beside one single-thread training job, ``pytest -n 2 tests/test_collapse.py`` took 1000 s with the default
    pools and 42 s with one thread per worker.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, threads)


_share_the_cores_between_workers()

SHARED_ZOO = Path(__file__).resolve().parents[2] / "shared" / "zoo"


@pytest.fixture(autouse=True, scope="session")
def _private_fingerprint_cache(tmp_path_factory):
    """Image fingerprints go to a cache of this test session (subprocesses inherit it), not the user's ~/.cache."""
    os.environ["FREQ_TRANSFORMS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def zoo() -> Path:
    """``../shared/zoo``, the real model-zoo bundles. CI has it, so a test that reads it fails without it instead of
    skipping its own subject."""
    if not SHARED_ZOO.is_dir():
        pytest.fail(f"{SHARED_ZOO} (the real zoo bundles these tests read) is missing: CI has it; put the shared "
                    "folder beside the repository")
    return SHARED_ZOO
