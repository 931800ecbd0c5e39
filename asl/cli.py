"""Command-line conventions shared by every tool (CONVENTIONS.md): user mistakes end with a one-line
`error: ...` on stderr and exit status 2; `--debug` or ASL_DEBUG=1 shows the traceback instead."""
import functools
import os
import sys


class UserError(Exception):
    """A mistake of the user's (missing path, malformed file, bad override): reported as one sentence."""


def debug_enabled(argv=None) -> bool:
    argv = sys.argv if argv is None else argv
    return "--debug" in argv or os.environ.get("ASL_DEBUG", "") not in ("", "0")


def main_guard(main):
    """Decorate a tool's `main()` so a UserError becomes `error: ...` and exit status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            if debug_enabled():
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def dataset_root() -> str:
    """The one dataset root: $ASL_DATASETS, default ./datasets (like detectron2's DETECTRON2_DATASETS)."""
    return os.environ.get("ASL_DATASETS", "datasets")
