"""Zoo-style release archives: versioned, byte-reproducible zips and a ``model_info.json`` index.

Layout of ``dist/`` after ``python -m freq_transforms release --bundles bundles --out dist``::

    dist/<name>_v<version>.zip      one top folder <name>/ with configs/, docs/, LICENSE, models/ (if shipped)
    dist/model_info.json            {"<name>_v<version>": {"checksum": <sha1 of zip>, "source": <url>}}
    dist/weights/<name>_v<version>/model.pt   with --weights_url: weights hosted apart (fold<k>/model.pt
                                              too), see large_files.yml

Version discipline: ``bundles/model_info.json`` (kept in the repository) records the content hash of
every released version; releasing changed content under an already released version is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from ..atomic import atomic_write, atomic_write_text

__all__ = ["ReleaseError", "bundle_files", "content_hash", "write_zip", "release"]

EXCLUDED_DIRS = {"eval", "logs", "__pycache__", ".ipynb_checkpoints", "runs", "previous"}  # previous: weights set aside
SHIPPED_MODELS = {"model.pt", "model.ts"}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class ReleaseError(ValueError):
    """A bundle cannot be released as it is; the message names the bundle and the fix."""


def bundle_files(bundle: Path) -> List[Path]:
    """Files that go into a release, sorted: no eval/, logs, caches, resume state, weights set aside by training
    (``models/previous/``) or hidden files."""
    files = []
    for path in sorted(bundle.rglob("*")):
        rel = path.relative_to(bundle)
        if not path.is_file() or any(part in EXCLUDED_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if rel.parts[0] == "models" and rel.name not in SHIPPED_MODELS:
            continue  # resume.pt, resume.pt.done, intermediate checkpoints stay local
        if path.suffix in {".pyc", ".tmp"}:
            continue
        files.append(path)
    return files


def content_hash(bundle: Path, files: Iterable[Path]) -> str:
    """sha256 over the relative paths and bytes of ``files``."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(bundle).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def write_zip(entries: List[Tuple[str, bytes]], out: Path) -> str:
    """Write a zip with fixed order and timestamps (same inputs, same bytes); return its sha1."""
    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)

    atomic_write(out, write)
    return hashlib.sha1(out.read_bytes()).hexdigest()


def _metadata(bundle: Path) -> Dict:
    path = bundle / "configs" / "metadata.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReleaseError(f"{path} is missing: {bundle} is not a bundle") from None
    except json.JSONDecodeError as err:
        raise ReleaseError(f"{path} is not valid JSON ({err})") from None
    version = meta.get("version")
    if not version:
        raise ReleaseError(f"{path} has no 'version'")
    if version not in meta.get("changelog", {}):
        raise ReleaseError(f"{path}: version {version} has no 'changelog' entry; describe what changed")
    return meta


def _read_json(path: Path) -> Dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReleaseError(f"{path} is not valid JSON ({err})") from None


def _large_files_yml(entries: List[Dict[str, str]]) -> bytes:
    lines = ["large_files:"]
    for entry in entries:
        lines.append(f"  - path: \"{entry['path']}\"")
        for key in ("url", "hash_val", "hash_type"):
            lines.append(f"    {key}: \"{entry[key]}\"")
    return ("\n".join(lines) + "\n").encode()


def _entries(bundle: Path, key: str, files: List[Path], weights_url: Optional[str],
             weights_dir: Path) -> List[Tuple[str, bytes]]:
    entries, large = [], []
    for path in files:
        rel = path.relative_to(bundle).as_posix()
        if weights_url and rel.startswith("models/"):
            inside = rel[len("models/"):]  # fold0/model.pt and fold1/model.pt must not land on one name
            hosted = weights_dir / key / inside
            hosted.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, hosted)
            large.append({"path": rel, "url": f"{weights_url.rstrip('/')}/{key}/{inside}",
                          "hash_val": hashlib.md5(path.read_bytes()).hexdigest(), "hash_type": "md5"})
            continue
        entries.append((f"{bundle.name}/{rel}", path.read_bytes()))
    if large:
        entries.append((f"{bundle.name}/large_files.yml", _large_files_yml(large)))
    return entries


def release(bundles: str | os.PathLike = "bundles", out: str | os.PathLike = "dist", base_url: Optional[str] = None,
            weights_url: Optional[str] = None, registry: Optional[str | os.PathLike] = None) -> Dict[str, Dict[str, str]]:
    """Release every bundle under ``bundles`` into ``out``; return the new ``model_info.json`` entries.

    Args:
        bundles: folder of bundle folders (each with configs/metadata.json).
        out: output folder for the zips and model_info.json (merged with an existing one).
        base_url: where the zips will be published (default: ``out`` as a file:// URL).
        weights_url: host ``models/*`` apart at ``<weights_url>/<name>_v<version>/`` (copied to
            ``out/weights/``) and ship a ``large_files.yml`` with their md5 instead.
        registry: released versions' content hashes (default ``<bundles>/model_info.json``).
    """
    root, dist = Path(bundles), Path(out)
    registry_path = Path(registry) if registry else root / "model_info.json"
    released = _read_json(registry_path)
    index = _read_json(dist / "model_info.json")
    base = (base_url or dist.resolve().as_uri()).rstrip("/")
    folders = sorted(p for p in root.iterdir() if (p / "configs").is_dir()) if root.is_dir() else []
    if not folders:
        raise ReleaseError(f"{root} holds no bundle folders (with configs/)")
    new: Dict[str, Dict[str, str]] = {}
    plans = []
    for bundle in folders:
        key = f"{bundle.name}_v{_metadata(bundle)['version']}"
        files = bundle_files(bundle)
        digest = content_hash(bundle, files)
        known = released.get(key, {}).get("content_sha256")
        if known and known != digest:
            raise ReleaseError(f"{bundle.name}: content changed since {key} was released; bump 'version' in "
                               f"{bundle / 'configs' / 'metadata.json'} and add a changelog entry")
        plans.append((bundle, key, files, digest))
    for bundle, key, files, digest in plans:  # checked all first: a refusal writes nothing
        sha1 = write_zip(_entries(bundle, key, files, weights_url, dist / "weights"), dist / f"{key}.zip")
        new[key] = {"checksum": sha1, "source": f"{base}/{key}.zip"}
        released[key] = {"content_sha256": digest}
    index.update(new)
    atomic_write_text(dist / "model_info.json", json.dumps(dict(sorted(index.items())), indent=4) + "\n")
    atomic_write_text(registry_path, json.dumps(dict(sorted(released.items())), indent=4) + "\n")
    return new
