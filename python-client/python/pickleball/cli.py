"""The ``pickleball`` command: ``scheduler``, ``executor``, ``standalone`` and ``demo``."""

from __future__ import annotations

import contextlib
import sys

from pickleball import _internal

USAGE = """usage: pickleball <command> [flags]

commands:
  scheduler    run a scheduler (plans and schedules jobs; never runs Python)
  executor     run an executor in this Python process (UDFs see this Python's packages)
  standalone   run a scheduler and executors in one process; prints its URL
  demo         generate a sample dataset and run jobs on a standalone cluster

`pickleball <command> --help` lists a command's flags."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pickleball`` console script.

    Examples:
        >>> main(["--help"])  # doctest: +ELLIPSIS
        usage: pickleball <command> [flags]
        ...
        0

    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    runners = {
        "scheduler": _internal.run_scheduler,
        "executor": _internal.run_executor,
        "standalone": _internal.run_standalone,
    }
    if command in runners:
        with contextlib.suppress(KeyboardInterrupt):
            runners[command]([f"pickleball {command}", *rest])
        return 0
    if command == "demo":
        from pickleball.demo import main as demo_main

        return demo_main(rest)
    print(f"pickleball: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
