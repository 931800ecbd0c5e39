#!/usr/bin/env python
"""Sweep one pretraining config key: pretrain at each value (and seed) with the same budget, evaluate every
encoder with one or several transfer tools, and write a table (Markdown + JSON) of each metric's mean ± std over
seeds, each number traced to its metrics.json. --baseline adds a row (MAE) with the same budget and seeds, --random
a row of random initialisations with the same seeds.

The first key=value after the config is the sweep, its values separated by commas (commas inside brackets or
quotes do not split); further key=value pairs are fixed overrides: the budget every run shares, the baseline's
too. --eval names the tasks (probe,finetune,...: each encoder is pretrained once and evaluated by each); each is
its toy protocol unless --eval-config names another:
  probe         configs/probe/toy.py (kNN top-1, linear top-1, dense mIoU)
  linprobe      configs/linprobe/toy.py, features cached (top1)
  finetune      configs/finetune/toy.py (top1)
  detection     configs/detection/mask_rcnn_vitdet_toy_1000it.py, after conversion to detectron2 (box and mask AP)
  segmentation  configs/segmentation/upernet_toy_1xb8_toyscenes.py, after conversion to mmseg (mIoU)
With several tasks, an evaluation's config and overrides name their task: --eval-config finetune=CONFIG,
--eval-override segmentation:train_cfg.max_iters=200.
Each (value, seed) runs under OUTPUT_DIR/<key>=<value>/seed<S>/ (pretrain/, one folder per task) as a small
pipeline (tools/run_pipeline.py on the sweep_point.py written there, which runs tools/pretrain.py and the transfer
tools); --jobs N runs N of them at once. A run whose metrics exist is reused on a rerun and an interrupted one
continues from its checkpoint, so adding values or seeds runs only what is new; a rerun with other fixed
overrides or evaluations into the same OUTPUT_DIR is refused.

Examples:
    python tools/sweep.py configs/pretrain/toy_asl.py model.sem_weight=0,0.1,0.5,1,2 --eval probe --seeds 3 \\
        --baseline mae --random --jobs 2 --out docs/sweeps/sem_weight
    python tools/sweep.py configs/pretrain/toy_asl.py model.temperature=0.1,1,3,10 --eval probe --seed-list 0,1 \\
        --baseline mae --random --out docs/sweeps/lambda
    python tools/sweep.py configs/pretrain/toy_asl.py model.mask_ratio=0.6,0.75,0.9 --eval finetune \\
        --seed-list 0,1
    python tools/sweep.py configs/pretrain/toy_asl.py model.temperature=0.5,1 --eval segmentation
    python tools/sweep.py configs/pretrain/toy_mae.py optim.epochs=25,40 --eval probe,linprobe,finetune \\
        --eval-override finetune:optim.epochs=10 --baseline configs/pretrain/toy_asl.py --random --seeds 3
    python tools/sweep.py configs/pretrain/vitb_coco_asl_800ep.py model.sem_weight=0.5,1 --data-root /data \\
        --nproc 8 --eval-config configs/linprobe/in100_vitb.py --baseline mae
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from asl.cli import UserError, main_guard  # noqa: E402
from chain.sweep import Sweep, parse_sweep, twin_config  # noqa: E402
from chain.task import BUILTIN, load_tasks  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")  # the toy protocols' configs are here
EVALS = [name for name, task in load_tasks().items() if task.toy_config]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the pretraining config to sweep")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="the sweep (key=v1,v2,...), then fixed overrides shared by every run")
    parser.add_argument("--eval", default="linprobe", metavar="TASK[,TASK...]",
                        help=f"the transfer task(s), each a group of columns, the first one's first column the "
                        f"headline: {', '.join(EVALS)} or one of --task's (default: linprobe)")
    parser.add_argument("--task", action="append", default=[], metavar="MODULE|FILE",
                        help="a task module of your own (a task.py declaring TASKS, as a pipeline config's `tasks`), "
                             "whose tasks --eval may then name (repeatable)")
    parser.add_argument("--eval-config", action="append", default=[], metavar="[TASK=]CONFIG",
                        help="an evaluation's config (default: its toy protocol, above); with several tasks, "
                        "TASK=CONFIG (repeatable)")
    parser.add_argument("--eval-override", action="append", default=[], metavar="[TASK:]KEY=VALUE",
                        help="an override of the evaluation config; with several tasks, TASK:KEY=VALUE (repeatable)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds 0..N-1 (default: 1)")
    seeds.add_argument("--seed-list", metavar="S,S,...", help="these seeds, e.g. 0,1,2")
    parser.add_argument("--baseline", metavar="mae|CONFIG", help="a row with the same budget and seeds: 'mae' "
                        "(the MAE twin of CONFIG, e.g. toy_mae.py for toy_asl.py) or a pretraining config")
    parser.add_argument("--random", action="store_true", help="a row of randomly initialised encoders, evaluated "
                        "with the same seeds (the seed draws the weights)")
    parser.add_argument("--output-dir", help="the sweep's runs (default: work_dirs/sweep/<config name>/<key>)")
    parser.add_argument("--work-dir", dest="output_dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", metavar="PREFIX", help="writes PREFIX.md and PREFIX.json (default: "
                        "OUTPUT_DIR/table)")
    parser.add_argument("--data-root", metavar="ROOT", help="dataset root of every run (sets $ASL_DATASETS; "
                        "default ./datasets, where the toy scenes are generated if absent)")
    parser.add_argument("--nproc", type=int, default=1, help="processes per run (torchrun; default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each with its share of the cores "
                        "(OMP_NUM_THREADS) and its output in OUTPUT_DIR/logs/; on a small CPU two one-thread runs "
                        "of the toy get through more work than one two-thread run (default 1)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    return parser.parse_intermixed_args(argv)


def seed_list(args) -> list:
    if args.seed_list is None:
        return list(range(args.seeds))
    try:
        seeds = [int(s) for s in args.seed_list.split(",")]
    except ValueError:
        raise UserError(f"--seed-list {args.seed_list!r} is not comma-separated integers, e.g. 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seed-list {args.seed_list!r} names a seed twice (it would count one run twice)")
    return seeds


def per_task(items: list, evals: list, split, sep: str) -> dict:
    """{task: [what]} from items naming their task (TASK<sep>what) or, with one task only, not."""
    out = {name: [] for name in evals}
    for item in items:
        task, what = split(item)
        if task is None and len(evals) > 1:
            raise UserError(f"{item!r}: with several evaluations ({', '.join(evals)}), say which one it is for, "
                            f"e.g. {evals[0]}{sep}{item}")
        if task is not None and task not in out:
            raise UserError(f"{item!r} is for {task!r}, which is not one of the evaluations ({', '.join(evals)})")
        out[task or evals[0]].append(what)
    return out


def eval_settings(args, evals: list) -> tuple:
    """Each evaluation's config and overrides: --eval-config, or the task's toy protocol (its config and
    overrides) where none is given; --eval-override on top (a key given there is listed once, with its value)."""
    known = set(load_tasks((*BUILTIN, *args.task)))  # any task's name: one not evaluated is then named as such
    configs = per_task(args.eval_config, evals, lambda item: item.split("=", 1) if item.split("=", 1)[0] in known
                       and "=" in item else (None, item), "=")
    overrides = per_task(args.eval_override, evals, lambda item: item.split(":", 1)
                         if ":" in item.split("=", 1)[0] else (None, item), ":")
    tasks = load_tasks((*BUILTIN, *args.task))
    eval_configs, eval_overrides = {}, {}
    for name in evals:
        task = tasks.get(name)  # an unknown name is the sweep's one-line error, with its closest match
        if len(configs[name]) > 1:
            raise UserError(f"--eval-config is given {len(configs[name])} times for {name}")
        if configs[name]:
            eval_configs[name], toy_overrides = configs[name][0], []
        elif task and not task.toy_config:
            raise UserError(f"the task {name!r} declares no toy protocol: give its config with --eval-config")
        else:
            eval_configs[name] = os.path.join(REPO, task.toy_config) if task else ""
            toy_overrides = task.toy_overrides if task else []
        given = {item.split("=", 1)[0] for item in overrides[name]}  # a key given here replaces the protocol's
        eval_overrides[name] = [*(o for o in toy_overrides if o.split("=", 1)[0] not in given), *overrides[name]]
    return eval_configs, eval_overrides


@main_guard
def main(argv=None):
    args = parse_args(argv)
    if not args.overrides:
        raise UserError("give the key to sweep and its values after the config, e.g. model.temperature=0.1,1,10")
    key, values = parse_sweep(args.overrides[0])
    name = os.path.splitext(os.path.basename(args.config))[0]
    baseline = twin_config(args.config) if args.baseline == "mae" else args.baseline
    evals = [e.strip() for e in args.eval.split(",")]
    eval_configs, eval_overrides = eval_settings(args, evals)
    sweep = Sweep(args.config, key, values, args.overrides[1:], evals, eval_configs, eval_overrides,
                  seed_list(args), baseline, args.random,
                  args.output_dir or os.path.join("work_dirs", "sweep", name, key), nproc=args.nproc,
                  jobs=args.jobs, task_modules=tuple(args.task))
    paths = sweep.run(args.data_root, args.out)
    with open(paths["markdown"]) as f:
        print("\n" + f.read(), flush=True)
    print(f"[sweep] table: {paths['markdown']}, {paths['json']}; runs under {sweep.work_dir}", flush=True)


if __name__ == "__main__":
    main()
