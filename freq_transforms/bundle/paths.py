"""Where the bundles are: the package's own copy (``freq_transforms.bundles``), in a checkout its ``bundles/``."""

from __future__ import annotations

from pathlib import Path
from typing import List

__all__ = ["installed_bundles", "bundle_dir", "shipped_weights"]


def installed_bundles() -> Path:
    """The folder of the five bundles shipped with the package: this checkout's ``bundles/`` for an editable
    install, ``site-packages/freq_transforms/bundles`` for a plain one."""
    from .. import bundles

    return Path(list(bundles.__path__)[0])


def bundle_dir(name: str) -> Path:
    """The shipped bundle ``name`` (e.g. ``hippocampus_mri_fd_segmentation``), checked to exist."""
    path = installed_bundles() / name
    if not (path / "configs" / "train.json").is_file():
        raise FileNotFoundError(f"bundle {name} is not in {installed_bundles()}: pass --bundle <bundle folder>")
    return path


def shipped_weights(bundle: Path) -> List[Path]:
    """The weights a bundle folder ships: ``models/model.pt`` and its ensemble members ``models/fold*/model.pt``,
    then those of its model options (``models/<option>/``, e.g. ``accurate``), not those training set aside
    (``models/previous/``)."""
    from ..networks.averaging import MEMBERS

    models = bundle / "models"
    default = [p for p in [models / "model.pt", *sorted(models.glob(MEMBERS))] if p.is_file()]
    options = sorted(p for p in models.glob("*/**/model.pt")
                     if p not in default and "previous" not in p.relative_to(models).parts)
    return default + options
