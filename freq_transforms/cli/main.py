"""Command line: ``python -m freq_transforms <command> [--option value ...]`` (``--help`` on each).

Only dispatch: the commands are :mod:`freq_transforms.cli.commands`, and :mod:`freq_transforms.cli.fire` checks a
command line before fire runs it.
"""

from __future__ import annotations

import sys
from typing import List, Optional, Sequence, Tuple

from .commands import COMMANDS
from .fire import UsageError, check_arguments, command_help, main_help, nearest, spell_flags

__all__ = ["PROG", "COMMANDS", "main", "resolve_command"]

PROG = "python -m freq_transforms"


def resolve_command(argv: Sequence[str]) -> Tuple[str, List[str]]:
    """The command named at the start of ``argv`` (one or two words) and the arguments after it."""
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in COMMANDS:
            return name, list(argv[words:])
    word = argv[0] if argv else ""
    subcommands = [c.split()[1] for c in COMMANDS if " " in c and c.split()[0] == word]
    if subcommands:
        raise UsageError(f"{word} needs a subcommand: {', '.join(subcommands)} (e.g. {PROG} {word} {subcommands[0]} "
                         "--help)")
    raise UsageError(f"unknown command {word!r}{nearest(word, [c.split()[0] for c in COMMANDS])}; "
                     f"commands: {', '.join(COMMANDS)}")


def run(name: str, args: List[str]) -> None:
    """Check ``args`` against command ``name``, then let fire run it; bad input raises :class:`UsageError`."""
    fn = COMMANDS[name]
    args = spell_flags(fn, args)
    check_arguments(PROG, name, fn, args)
    import fire

    from ..errors import DataError, missing_module

    try:
        fire.Fire(fn, command=args, name=f"{PROG} {name}")
    except (DataError, ValueError, FileExistsError, FileNotFoundError) as err:  # ReleaseError is a ValueError
        raise UsageError(str(err)) from None
    except Exception as err:  # an optional module a command needs, wrapped or not (monai.bundle wraps it)
        missing = missing_module(err)
        if missing is None:
            raise
        raise UsageError(missing) from None


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point; bad input ends with a one-line ``error: ...`` and exit code 2."""
    from ..bundle.checks import install_one_line_errors

    install_one_line_errors()  # the commands that run bundles in this process (demo, trial, sweep) end as theirs do
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(main_help(PROG, COMMANDS))
            return
        name, args = resolve_command(argv)
        if "--help" in args or "-h" in args:
            print(command_help(PROG, name, COMMANDS[name]))
            return
        run(name, args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
