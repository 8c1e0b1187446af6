"""Session-wide test settings."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_fingerprint_cache(tmp_path_factory):
    """Image fingerprints go to a cache of this test session (subprocesses inherit it), not the user's ~/.cache."""
    os.environ["FREQ_TRANSFORMS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
