"""The test runner behaves like ``python -m``: the same output, exit status, environment and ``sys.path`` as a
subprocess, so a "one line, no traceback" test run through it fails when the code under test forgot the hook."""

import json
import subprocess
import sys

import cli_runner


def _config(tmp_path, run, imports=()):
    config = {"imports": ["$import os", "$import sys", *imports], "run": run}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return ["python", "-m", "monai.bundle", "run", "--config_file", str(path)]


def _both(cmd, cwd):
    cmd = [sys.executable, *cmd[1:]]
    forked = cli_runner.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    plain = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    return forked, plain


def _last_line(text):
    return text.strip().splitlines()[-1]


def _messages(stderr):
    """The traceback without its frames (their lines are indented): the exceptions and how they chain."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(" ")]


def test_an_error_without_the_hook_prints_a_traceback_as_a_subprocess_does(tmp_path):
    """A bundle that raises a DataError but never imports ``freq_transforms.bundle.checks`` (whose hook turns it
    into one line) prints monai.bundle's traceback, through the runner exactly as through a subprocess. With
    ``bundle_checks`` preloaded in the server, the runner printed one line here."""
    raiser = "$(_ for _ in ()).throw(freq_transforms.errors.DataError('case_7.nii.gz is truncated'))"
    cmd = _config(tmp_path, [raiser], ["$import freq_transforms", "$import freq_transforms.errors"])
    forked, plain = _both(cmd, tmp_path)
    assert plain.returncode == forked.returncode == 1
    assert "Traceback" in plain.stderr and "Traceback" in forked.stderr
    assert _messages(forked.stderr) == _messages(plain.stderr)
    assert any("case_7.nii.gz is truncated" in line for line in _messages(plain.stderr))


def test_with_the_hook_both_print_the_one_line(tmp_path):
    """The bundles install the hook as the first step of their ``initialize``; importing the module does not."""
    raiser = "$(_ for _ in ()).throw(freq_transforms.errors.DataError('case_7.nii.gz is truncated'))"
    cmd = _config(tmp_path, ["$freq_transforms.bundle.checks.install_one_line_errors()", raiser],
                  ["$import freq_transforms", "$import freq_transforms.errors", "$import freq_transforms.bundle.checks"])
    forked, plain = _both(cmd, tmp_path)
    assert forked.returncode == plain.returncode == 1
    assert _last_line(forked.stderr) == _last_line(plain.stderr) == "error: case_7.nii.gz is truncated"
    assert "Traceback" not in forked.stderr + plain.stderr


def test_environment_cwd_and_sys_path_are_those_of_python_m(tmp_path, monkeypatch):
    """An environment variable set after the server started reaches the call; ``sys.path`` starts with the
    working directory and holds nothing the test process added (pytest's rootdir, tests/)."""
    cli_runner.run([sys.executable, "-m", "freq_transforms", "--help"], timeout=120)  # the server is up
    monkeypatch.setenv("FIDELITY_PROBE", "set-late")
    show = "$print(json.dumps([os.environ.get('FIDELITY_PROBE'), os.getcwd(), sys.path]))"
    cmd = _config(tmp_path, [show], ["$import json"])
    forked, plain = _both(cmd, tmp_path)
    seen_forked, seen_plain = (json.loads(_last_line(r.stdout)) for r in (forked, plain))
    assert seen_forked[0] == seen_plain[0] == "set-late"
    assert seen_forked[1] == seen_plain[1]
    assert seen_forked[2] == seen_plain[2] and seen_forked[2][0] == str(tmp_path.resolve())
