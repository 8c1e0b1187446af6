"""Run ``python -m monai.bundle ...`` / ``python -m freq_transforms ...`` the way a user does, without paying the
import of torch, MONAI and ignite (about 6 s on the CI machine) on each of the suite's few hundred calls.

What ``subprocess.run`` does not: each call still runs in a process of its own (its own working directory,
``sys.argv``, exit status, stdout and stderr, nothing left behind in the test process), but that process is
forked from a server that imported those packages once. It is multiprocessing's *forkserver*: the server never
runs torch work itself, so forking it is safe with OpenMP, unlike forking the test process.

What the forked process shares with ``python -m`` (``tests/test_first_hour.py`` checks it against a subprocess):

- the module runs as ``python -m`` runs it (``runpy``; an uncaught exception goes through the interpreter's own
  ``sys.excepthook`` and exits 1);
- nothing preloaded changes behaviour: the server imports third-party packages only (``PRELOAD``), never this
  project's, so every import-time effect of ours (the one-line error hook of ``freq_transforms.bundle.checks``)
  happens in the call itself or not at all; the excepthook is reset to the interpreter's;
- the environment is the test process's at the time of the call (a ``monkeypatch.setenv`` after the server
  started included), the working directory is ``cwd``, and ``sys.path`` is what ``python -m`` gives a fresh
  interpreter there (the working directory first, then the interpreter's own paths).

Calls with their own environment (``env=...``: ``OMP_NUM_THREADS`` or ``PYTHONPATH`` act when torch or the
interpreter start, before any fork), other programs, and ``FREQ_TRANSFORMS_TEST_SUBPROCESS=1`` in the environment
take plain ``subprocess.run``.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

FORKED_MODULES = ("monai.bundle", "freq_transforms")
# third-party packages only: importing them changes no global state a command of ours could rely on
PRELOAD = ["torch", "monai", "monai.bundle", "monai.networks.nets", "ignite.engine", "ignite.handlers", "fire",
           "nibabel", "scipy.ndimage", "cli_runner"]

_context: Optional[multiprocessing.context.BaseContext] = None
_fresh_path: Optional[list] = None


def _interpreter_path() -> list:
    """``sys.path`` of a fresh interpreter, without its first entry (the script's or working directory)."""
    global _fresh_path
    if _fresh_path is None:
        code = "import json, sys; print(json.dumps(sys.path[1:]))"
        _fresh_path = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                check=True).stdout)
    return list(_fresh_path)


def _forkserver() -> multiprocessing.context.BaseContext:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # as the interpreter does with sys.exit("message")
    return 1


def _run_module(module: str, args: Sequence[str], cwd: str, stdout_path: str, stderr_path: str,
                environ: dict, path: list) -> None:
    """The forked process: ``python -m module *args`` in ``cwd`` with ``environ`` and ``sys.path`` ``[cwd, *path]``,
    stdout/stderr into the two files."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = [cwd, *path]
    sys.excepthook = sys.__excepthook__
    for fd, path in ((1, stdout_path), (2, stderr_path)):
        with open(path, "wb") as stream:
            os.dup2(stream.fileno(), fd)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
    sys.stdin = open(os.devnull)
    sys.argv = [module, *args]
    status = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        status = _exit_status(stop.code)
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        sys.excepthook(*sys.exc_info())
        status = 1
    atexit._run_exitfuncs()  # as at interpreter exit (logging.shutdown, ...); the forked process skips them
    sys.stdout.flush()
    sys.stderr.flush()
    raise SystemExit(status)  # multiprocessing joins threads and exits with it


def _forked(module: str, args: Sequence[str], cwd: Optional[Path], timeout: Optional[float]) -> tuple:
    with tempfile.TemporaryDirectory() as folder:
        out, err = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
        where = str(Path(cwd or os.getcwd()).resolve())
        process = _forkserver().Process(target=_run_module, args=(module, list(args), where, out, err,
                                                                   dict(os.environ), _interpreter_path()))
        process.start()
        process.join(timeout)
        timed_out = process.exitcode is None
        if timed_out:
            process.kill()
            process.join()
        stdout, stderr = (Path(path).read_bytes() if os.path.exists(path) else b"" for path in (out, err))
    return process.exitcode, stdout, stderr, timed_out


def run(cmd: Sequence[str], cwd: Optional[Path] = None, capture_output: bool = True, text: bool = True,
        timeout: Optional[float] = None, env: Optional[dict] = None, check: bool = False
        ) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, ...)`` with output captured; ``python -m <FORKED_MODULES>`` forked (module docstring)."""
    cmd = [str(c) for c in cmd]
    forkable = (len(cmd) > 2 and cmd[0] == sys.executable and cmd[1] == "-m" and cmd[2] in FORKED_MODULES
                and env is None and os.environ.get("FREQ_TRANSFORMS_TEST_SUBPROCESS") != "1")
    if not forkable:
        return subprocess.run(cmd, cwd=cwd, capture_output=capture_output, text=text, timeout=timeout, env=env,
                              check=check)
    status, stdout, stderr, timed_out = _forked(cmd[2], cmd[3:], cwd, timeout)
    if timed_out:
        raise subprocess.TimeoutExpired(cmd, timeout, stdout, stderr)
    if text:
        stdout, stderr = stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
    result = subprocess.CompletedProcess(cmd, status, stdout, stderr)
    if check:
        result.check_returncode()
    return result
