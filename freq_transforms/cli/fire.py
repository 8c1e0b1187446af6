"""What fire lacks, in the smallest wrapper that gives it: strict options, honest booleans, fast help.

fire (0.7) binds what it can and applies an option it cannot bind to the command's *result*, after the command
has run (a mistyped ``--n_trian`` would split with the default); it reads only ``True``/``False`` as booleans, so
``--overwrite false`` would arrive as the string ``'false'`` (true); and its ``--help`` imports the command's
module. Here every option is checked against the command's signature first, booleans are spelled for fire, and
``--help`` is written from signatures and docstrings without importing torch or MONAI.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Callable, Dict, List, Mapping, Sequence

__all__ = ["UsageError", "described_options", "command_help", "main_help", "nearest", "check_arguments",
           "spell_flags"]


class UsageError(ValueError):
    """A command line that cannot run: unknown command or option, too many arguments, a bad boolean."""


def _summary(fn: Callable) -> str:
    return (inspect.getdoc(fn) or "").splitlines()[0]


def described_options(fn: Callable) -> Dict[str, str]:
    """``name -> description`` from the ``Args:`` section of ``fn``'s docstring (continuation lines joined)."""
    doc = inspect.getdoc(fn) or ""
    found: Dict[str, str] = {}
    if "Args:" not in doc:
        return found
    current = None
    for line in doc.split("Args:", 1)[1].splitlines():
        if line.startswith("    ") and not line.startswith("        ") and ":" in line:
            names, text = line.strip().split(":", 1)
            current = [n.strip() for n in names.split(",")]
            for name in current:
                found[name] = text.strip()
        elif line.startswith("        ") and current:
            for name in current:
                found[name] += " " + line.strip()
        elif line.strip():
            break
    return found


def _type_word(parameter: inspect.Parameter) -> str:
    text = str(parameter.annotation).replace("typing.", "")
    if "Sequence" in text or "List" in text:
        return "list"
    for word in ("bool", "int", "float", "Dict", "str"):
        if word in text:
            return "dict" if word == "Dict" else word
    return "value"


def command_help(prog: str, name: str, fn: Callable) -> str:
    """The ``--help`` text of one command: usage, what it does, every option with type, default and meaning."""
    params = inspect.signature(fn).parameters
    described = described_options(fn)
    required = [p for p in params.values() if p.default is inspect.Parameter.empty]
    usage = f"usage: {prog} {name} " + " ".join(f"<{p.name}>" for p in required) + " [--option value ...]"
    lines = [usage, "", _summary(fn), "", "options (also --name=value; lists as a,b,c):"]
    for p in params.values():
        default = "required" if p.default is inspect.Parameter.empty else f"default {p.default!r}"
        if _type_word(p) == "bool" and p.default is False:
            default = "flag, default False"
        lines.append(f"  --{p.name} ({_type_word(p)}, {default})")
        lines.append(f"      {described.get(p.name, '')}")
    return "\n".join(lines)


def main_help(prog: str, commands: Mapping[str, Callable]) -> str:
    """The top-level ``--help``: every command with its one-line summary."""
    width = max(len(n) for n in commands)
    lines = [f"usage: {prog} <command> [--option value ...]   ({prog} <command> --help for its options)", "",
             "commands:"]
    lines += [f"  {name.ljust(width)}  {_summary(fn)}" for name, fn in commands.items()]
    return "\n".join(lines)


def nearest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]}?)" if close else ""


def check_arguments(prog: str, name: str, fn: Callable, args: Sequence[str]) -> None:
    """Raise :class:`UsageError` naming the first option ``fn`` does not have (and the nearest one it has), or
    too many positional arguments, before anything runs. Boolean options are spelled ``--key=value`` first
    (:func:`spell_flags`)."""
    params = inspect.signature(fn).parameters
    options = [f"--{p}" for p in params]
    positional, index = 0, 0
    while index < len(args):
        token = args[index]
        index += 1
        if token.startswith("--") and len(token) > 2:
            key = token.split("=", 1)[0][2:].replace("-", "_")
            if key not in params:
                raise UsageError(f"{name} has no option --{key}{nearest('--' + key, options)}")
            if "=" not in token and index < len(args):
                index += 1  # its value
        else:
            positional += 1
    if positional > len(params):
        raise UsageError(f"{name} takes at most {len(params)} arguments, got {positional}: see {prog} {name} --help")


def _boolean(key: str, value: str) -> str:
    from ..bundle.checks import flag
    from ..errors import SettingsError

    try:
        return f"--{key}={flag(value, key)}"
    except SettingsError as err:
        raise UsageError(f"--{err}") from None


def _named(args: Sequence[str]) -> List[str]:
    return [t[2:].partition("=")[0].replace("-", "_") for t in args if t.startswith("--") and len(t) > 2]


def _number(key: str, value: str, kind: str, nullable: bool) -> str:
    """``value`` of an ``int``/``float`` option, checked (:class:`UsageError` naming the option otherwise);
    ``null``/``none`` in any case as fire's ``None`` where the default is ``None``."""
    if nullable and value.strip().lower() in ("null", "none"):
        return "None"
    if kind not in ("int", "float"):
        return value
    try:
        int(value) if kind == "int" else float(value)
    except ValueError:
        raise UsageError(f"--{key} must be {'an integer' if kind == 'int' else 'a number'}"
                         f"{' or null' if nullable else ''}, got {value!r}") from None
    return value


def spell_flags(fn: Callable, args: Sequence[str]) -> List[str]:
    """``args`` with each boolean option spelled ``--key=True``/``--key=False``, named (``--key``, ``--key value``,
    ``--key=value``) or positional, and ``null``/``none`` given to an option whose default is ``None`` spelled
    as fire's ``None``. Any case of true/false/yes/no/1/0 is accepted; anything else, an empty ``--key=``
    included, is a :class:`UsageError` naming the option."""
    params = inspect.signature(fn).parameters
    is_bool = {key: _type_word(p) == "bool" for key, p in params.items()}
    nullable = {key for key, p in params.items() if p.default is None}
    kinds = {key: _type_word(p) for key, p in params.items()}
    unnamed = [key for key in params if key not in _named(args)]  # the parameters positional values fill, in order
    spelled: List[str] = []
    index, position = 0, 0
    while index < len(args):
        token = args[index]
        index += 1
        if not (token.startswith("--") and len(token) > 2):
            key = unnamed[position] if position < len(unnamed) else ""
            position += 1
            spelled.append(_boolean(key, token) if is_bool.get(key) else
                           _number(key, token, kinds[key], key in nullable) if key in kinds else token)
            continue
        key, equals, value = token[2:].partition("=")
        key = key.replace("-", "_")
        if not is_bool.get(key):
            if not equals and index < len(args):
                value, index = args[index], index + 1  # its value, never read as a positional
            elif not equals:
                spelled.append(token)
                continue
            spelled.append(f"--{key}={_number(key, value, kinds[key], key in nullable)}" if key in kinds
                           else f"--{key}={value}")
            continue
        if not equals and index < len(args) and not args[index].startswith("--"):
            value, index = args[index], index + 1
        elif not equals:
            value = "true"
        spelled.append(_boolean(key, value))
    return spelled
