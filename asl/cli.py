"""Command-line conventions shared by every tool (docs/conventions.md): user mistakes end with a one-line
`error: ...` on stderr and exit status 2, a run that cannot go on (a non-finite loss) with one line and status 1;
`--debug` or ASL_DEBUG=1 shows the traceback instead."""
import argparse
import difflib
import functools
import importlib
import os
import sys

from .signals import EXIT_PREEMPTED, Preempted


class UserError(Exception):
    """A mistake of the user's (missing path, malformed file, bad override): reported as one sentence. The one
    error type the libraries raise for the tools to print; `exit_code` is the tool's exit status."""

    exit_code = 2


def debug_enabled(argv=None) -> bool:
    argv = sys.argv if argv is None else argv
    return "--debug" in argv or os.environ.get("ASL_DEBUG", "") not in ("", "0")


def main_guard(main):
    """Decorate a tool's `main()`: a UserError becomes `error: ...` and its exit status (2), a preempted run its
    message and EXIT_PREEMPTED (requeue me)."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            if debug_enabled():
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(err.exit_code)
        except Preempted as stop:
            print(f"preempted: {stop}", file=sys.stderr, flush=True)
            sys.exit(EXIT_PREEMPTED)

    return wrapper


def dataset_root() -> str:
    """The one dataset root: $ASL_DATASETS, default ./datasets (like detectron2's DETECTRON2_DATASETS)."""
    return os.environ.get("ASL_DATASETS", "datasets")


def add_run_options(parser, stage: str, init: str = None, resume_help: str = None):
    """The options every training tool spells the same way: --output-dir, --init / --init-name, --data-root,
    --resume [auto|CKPT], --force, --debug. The frameworks' older spellings (--work-dir, --pretrained,
    --init-method) are accepted too, without being advertised."""
    parser.add_argument("--output-dir", help=f"run directory (default: work_dirs/{stage}/<config name>)")
    parser.add_argument("--work-dir", dest="output_dir", help=argparse.SUPPRESS)
    if init:  # what --init reads, in words
        parser.add_argument("--init", metavar="CKPT", help=f"encoder weights: {init}; default: random")
        parser.add_argument("--pretrained", dest="init", help=argparse.SUPPRESS)
        parser.add_argument("--init-name", metavar="NAME",
                            help="name of the initialisation in metrics.json (asl, mae, ...; default: read from a "
                                 "pretraining checkpoint, 'random' without --init)")
        parser.add_argument("--init-method", dest="init_name", help=argparse.SUPPRESS)
    parser.add_argument("--data-root", metavar="ROOT",
                        help="dataset root holding the standard layouts (sets $ASL_DATASETS; default ./datasets)")
    parser.add_argument("--resume", metavar="auto|CKPT", help=resume_help or
                        "continue the run directory's run ('auto', also when --resume is given alone) or the run of "
                        "this checkpoint; a new run when there is none")
    parser.add_argument("--force", action="store_true",
                        help="start over in a run directory that holds another run (deletes its checkpoints)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")


# what --init reads in the tools that take any encoder file
ENCODER_INIT = ("any encoder checkpoint (a pretraining checkpoint, an MAE release, timm weights, a "
                "tools/convert_ckpt.py file)")


def config_tool_parser(doc: str, stage: str, default_config: str, init: str = None, data_path: str = None):
    """The command line of the tools that run one of our configs (pretrain, probe, linprobe, finetune):
    [config] [key=value ...], the run options, and --data-path where `data_path` says what it reads."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=default_config, help="config file (default: the toy one)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    if data_path:
        parser.add_argument("--data-path", help=data_path)
    add_run_options(parser, stage, init=init)
    return parser


def config_tool_run(args, stage: str, default_config: str):
    """(config, run directory) of a config tool's parsed arguments: the dataset root applied, the config loaded
    with its overrides (given alone, they override the default config), --init / --init-name / --data-path put
    into it; the run directory is --output-dir or work_dirs/<stage>/<config name>."""
    from .config import apply_overrides, load_config  # asl.config imports this module

    apply_data_root(args.data_root)
    if "=" in args.config:  # only overrides were given
        args.overrides.insert(0, args.config)
        args.config = default_config
    cfg = apply_overrides(load_config(args.config), args.overrides)
    for key in ("init", "init_name"):
        if getattr(args, key, None):
            cfg["model"][key] = getattr(args, key)
    if getattr(args, "data_path", None):
        cfg["data"]["path"] = args.data_path
    name = os.path.splitext(os.path.basename(args.config))[0]
    return cfg, args.output_dir or os.path.join("work_dirs", stage, name)


def imported_on_call(target: str):
    """The function `module:name`, imported when first called: a tool that names its engine this way answers
    `--help` and argument mistakes without loading torch, which takes seconds."""
    module, name = target.split(":")

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    return call


def config_tool(doc: str, stage: str, default_config: str, run, **parser_options):
    """(parse_args, main) of a tool that runs one of our configs (pretrain, probe, linprobe, finetune): the
    command line of `config_tool_parser`, then `run(cfg, run_dir, resume, force)` under main_guard."""
    def parse_args(argv=None):
        parser = config_tool_parser(doc, stage, default_config, **parser_options)
        return parser.parse_intermixed_args(normalize_argv(argv))

    @main_guard
    def main(argv=None):
        args = parse_args(argv)
        return run(*config_tool_run(args, stage, default_config), args.resume, args.force)

    return parse_args, main


def normalize_argv(argv) -> list:
    """`--resume` alone means `--resume auto` (what the sbatch examples pass to every tool)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = []
    for i, token in enumerate(argv):
        out.append(token)
        following = argv[i + 1] if i + 1 < len(argv) else None
        if token == "--resume" and (following is None or following.startswith("-") or "=" in following
                                    or not (following == "auto" or os.path.splitext(following)[1] in CKPT_SUFFIXES)):
            out.append("auto")
    return out


CKPT_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin")


def apply_data_root(root: str):
    """--data-root: the dataset root for this process and the ones it starts."""
    if root:
        os.environ["ASL_DATASETS"] = os.path.abspath(root)


def did_you_mean(name: str, candidates) -> str:
    """' (did you mean 'x'?)' for the closest candidate, '' when none is close."""
    close = difflib.get_close_matches(name, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
