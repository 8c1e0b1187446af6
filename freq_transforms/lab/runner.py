"""Run a bundle's own configs through ``monai.bundle`` (no second training loop)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

__all__ = ["logging_conf", "QUIET_LOGGING", "bundle_configs", "bundle_default", "run_bundle"]

def logging_conf(level: str = "INFO", stream: str = "sys.stdout") -> str:
    """A ``logging.conf`` (the bundle format monai.bundle validates) with one console handler."""
    return f"""[loggers]
keys=root

[handlers]
keys=consoleHandler

[formatters]
keys=fullFormatter

[logger_root]
level={level}
handlers=consoleHandler

[handler_consoleHandler]
class=StreamHandler
level={level}
formatter=fullFormatter
args=({stream},)

[formatter_fullFormatter]
format=%(asctime)s - %(name)s - %(levelname)s - %(message)s
"""


QUIET_LOGGING = logging_conf("WARNING", "sys.stderr")


def bundle_configs(bundle_dir: str | os.PathLike, *names: str) -> list[str]:
    """Absolute paths of ``configs/<name>.json`` in ``bundle_dir``, checked to exist."""
    paths = []
    for name in names:
        path = Path(bundle_dir).resolve() / "configs" / f"{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: is {bundle_dir} a bundle folder?")
        paths.append(str(path))
    return paths


def bundle_default(bundle_dir: str | os.PathLike, key: str, overrides: Optional[Mapping[str, Any]] = None) -> Any:
    """``key`` as a run of the bundle sees it: the override if given, else the bundle's ``train.json`` value."""
    if overrides and key in overrides:
        return overrides[key]
    return json.loads(Path(bundle_configs(bundle_dir, "train")[0]).read_text()).get(key)


def run_bundle(bundle_dir: str | os.PathLike, configs: Sequence[str], run_id: str = "run",
               logging_file: str | None = None, **overrides: Any) -> None:
    """``python -m monai.bundle run <run_id> --config_file [...] --<key> <value>`` in this process.

    With :data:`QUIET_LOGGING` as ``logging_file`` nothing below a warning is logged during the run: MONAI's
    input summary and its ``StatsHandler`` log through loggers of their own that a logging file's root level
    does not reach, so INFO is switched off (``logging.disable``) for the run and back on after it."""
    from monai.bundle import run

    files = bundle_configs(bundle_dir, *configs)
    meta = bundle_configs(bundle_dir, "metadata")[0]
    quiet = logging_file is not None and Path(logging_file).read_text() == QUIET_LOGGING
    logging_file = logging_file or str(Path(bundle_dir).resolve() / "configs" / "logging.conf")
    if quiet:
        logging.disable(logging.INFO)
    try:
        run(run_id=run_id, config_file=files, meta_file=meta, logging_file=logging_file, **overrides)
    finally:
        if quiet:
            logging.disable(logging.NOTSET)
