"""Session-wide test settings."""

import os
from pathlib import Path

import pytest

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
