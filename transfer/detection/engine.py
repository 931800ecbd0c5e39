"""Training and evaluation of a detectron2 LazyConfig, as detectron2's `tools/lazyconfig_train_net.py` does it,
plus this project's conventions: strict checkpoint loading, the optimizer built from the shared layer-decay rule
before DDP wraps the model, `log.jsonl` + tensorboard + progress with ETA, and `metrics.json` for the results
table (docs/conventions.md). `tools/train_det.py` is the command line around it.
"""
import inspect
import logging
import math
import os
import sys
import tempfile
import time

import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.engine import AMPTrainer, HookBase, SimpleTrainer, create_ddp_model, default_setup, hooks
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from omegaconf import OmegaConf

from asl.cli import UserError
from asl.config import check_key
from asl.engine.launch import device_for, join_group
from asl.engine.logger import peak_gpu_memory_gib
from asl.engine.runtime import claim_run_dir, refuse_changed_config, refuse_other_process_count
from asl.models import ARCHS
from asl.records import INIT_FILE, metrics_record, read_init, write_init, write_json
from asl.signals import Preempted, StopSignals

from .checkpoint import StrictDetectionCheckpointer
from .data import (
    build_train_loader,
    dataset_names,
    family,
    install_worker_init,
    match_mask_format,
    register_datasets,
    resolve_root,
    use_own_dataset,
)

logger = logging.getLogger("detectron2.asl")
AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
TASKS = {"bbox": "box", "segm": "mask"}


# ----------------------------------------------------------------------------------------------- configuration
def load_config(path: str, overrides=(), output_dir: str = None):
    """LazyConfig.load + checked `key=value` overrides. An override must name an existing key, or an argument
    that the LazyCall it lands in accepts (detectron2 itself would silently create a misspelt key)."""
    if not os.path.isfile(path):
        raise UserError(f"config file {path} does not exist")
    try:
        cfg = LazyConfig.load(path)
    except (ImportError, SyntaxError, NameError, AttributeError) as err:
        raise UserError(f"config {path} does not load: {type(err).__name__}: {err}") from None
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not of the form key=value (e.g. train.max_iter=100)")
        check_override_key(cfg, item.split("=", 1)[0].lstrip("+"))
    try:
        LazyConfig.apply_overrides(cfg, list(overrides))
    except Exception as err:  # hydra's parser: OverrideParseException, KeyError, ...
        raise UserError(f"cannot apply the overrides {' '.join(overrides)}: {err}") from None
    if output_dir:
        cfg.train.output_dir = output_dir
    return cfg


def check_override_key(cfg, key: str):
    check_key(cfg, key, _target_arguments)


def _target_arguments(node):
    """The argument names of the LazyCall target a node builds (None: it takes any, or cannot be inspected)."""
    if "_target_" not in node:
        return set()
    try:
        params = inspect.signature(node._target_).parameters
    except (TypeError, ValueError):
        return None
    return None if any(p.kind == p.VAR_KEYWORD for p in params.values()) else set(params)


# keys that may change between the pieces of one run (resources, logging, where things are written)
RESUMABLE_KEYS = ("train.output_dir", "train.log_period", "train.eval_period", "train.checkpointer.period",
                  "train.init_checkpoint", "dataloader.train.num_workers", "dataloader.test.num_workers",
                  "train.device", "train.amp.enabled",
                  "dataloader.train.mapper.instance_mask_format")  # set from the data (match_mask_format)
RUN_FILES = ("model_*.pth", "last_checkpoint", "log.jsonl", "log.txt*", "metrics.json", INIT_FILE, "tensorboard",
             "config.yaml")


def join_external_launch(launch):
    """Join the process group of an srun / torchrun launch as detectron2's `launch` would have (device, group,
    the per-machine group that comm.get_local_rank needs)."""
    device = device_for(launch)
    join_group(launch, device)
    comm.create_local_process_group(launch.local_world_size)
    comm.synchronize()


def claim_output_dir(cfg, args, main: bool):
    """The run-directory rule of every tool: a new run into a directory holding another run's checkpoint is
    refused (unless --force, which clears it); --resume refuses a config that changed beyond RESUMABLE_KEYS."""
    out = cfg.train.output_dir
    if args.eval_only:
        return
    holds_run = os.path.exists(os.path.join(out, "last_checkpoint"))
    if args.resume and holds_run and os.path.exists(os.path.join(out, "config.yaml")):
        with tempfile.TemporaryDirectory() as tmp:  # the new config as detectron2 saves it, to compare like with like
            LazyConfig.save(cfg, os.path.join(tmp, "config.yaml"))
            new = LazyConfig.load(os.path.join(tmp, "config.yaml"))
        saved = LazyConfig.load(os.path.join(out, "config.yaml"))
        refuse_changed_config(*(OmegaConf.to_container(c, resolve=False) for c in (saved, new)), RESUMABLE_KEYS)
    claim_run_dir(out, holds_run, args.resume, args.force, main, RUN_FILES, "--resume",
                  keep=[cfg.train.init_checkpoint])


def resolve_device(cfg):
    """cuda when the config asks for it and it exists; otherwise the CPU (and no AMP, which needs CUDA)."""
    if str(cfg.train.device).startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: running on the CPU, without AMP")
        cfg.train.device = "cpu"
    if cfg.train.device == "cpu" and cfg.train.amp.enabled:
        cfg.train.amp.enabled = False


def model_name(cfg) -> str:
    """The encoder's name in asl.models.ARCHS terms (vit_base_patch16, vit_toy_patch16, ...)."""
    net = cfg.model.backbone.net
    for name, arch in ARCHS.items():
        if (arch["embed_dim"], arch["depth"], arch["patch_size"]) == (net.embed_dim, net.depth, net.patch_size):
            return name
    return f"vit_{net.embed_dim}d_{net.depth}b_patch{net.patch_size}"


# ------------------------------------------------------------------------------------------ model + optimizer
def build_model_and_optimizer(cfg):
    """Model on cfg.train.device and its optimizer, built from the unwrapped model (so the layer-decay groups see
    `backbone.net.blocks.N` names, never `module.`); wrap with `wrap_ddp` only afterwards."""
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    del cfg.optimizer.params.model  # keep the config printable / savable
    return model, optimizer


def wrap_ddp(model, cfg):
    if comm.get_world_size() == 1:
        return model
    if str(cfg.train.device).startswith("cuda"):
        return create_ddp_model(model, **cfg.train.ddp)
    ddp = {k: v for k, v in cfg.train.ddp.items() if k != "fp16_compression"}
    return torch.nn.parallel.DistributedDataParallel(model, **ddp)


# ------------------------------------------------------------------------------------------------ evaluation
def do_test(cfg, model):
    if "evaluator" not in cfg.dataloader:
        return {}
    results = inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))
    if comm.is_main_process():
        print_csv_format(results)
    return results


def flatten_metrics(results: dict, tasks=tuple(TASKS)):
    """COCOEvaluator results -> (metrics {box_AP, box_AP50, ..., mask_AP, ...}, per-category {box: {...}},
    notes). detectron2 reports NaN in two cases: the model made no detections at all (every AP is NaN: reported
    as 0, as docs/conventions.md asks), or the ground truth has no object of a size range or category (APl on 64 px
    toy scenes: left out, since no number is right there). Both are named in the notes. With no detections at all
    detectron2 leaves out the mask task entirely (it infers the tasks from the predictions): a model with a mask
    head (`tasks` holds "segm") then scores mask AP 0 too."""
    metrics, per_category, notes = {}, {}, []
    for task, prefix in TASKS.items():
        if task not in tasks:
            continue
        values = {k: float(v) for k, v in (results.get(task) or {}).items()}
        if not values and results:
            values = {k: math.nan for k in AP_KEYS}  # expected, evaluated, and nothing detected
        if values and all(math.isnan(values[k]) for k in AP_KEYS if k in values):
            notes.append(f"no {prefix} detections on the val split: COCOeval's NaN {prefix} AP reported as 0")
            values = {k: 0.0 for k in values}
        undefined = [k for k, v in values.items() if math.isnan(v)]
        for key, value in values.items():
            if math.isnan(value):
                continue
            if key in AP_KEYS:
                metrics[f"{prefix}_{key}"] = value
            elif key.startswith("AP-"):
                per_category.setdefault(prefix, {})[key[3:]] = value
        if undefined:
            notes.append(f"{prefix} {', '.join(undefined)} left out: the ground truth has no object of that size "
                         "range or category (COCOeval: undefined)")
    return metrics, per_category, notes


def write_metrics(cfg, results, iterations, wall_time, init, summaries=None, path=None):
    masks = "mask_head" in cfg.model.roi_heads and cfg.model.roi_heads.mask_head is not None
    metrics, per_category, notes = flatten_metrics(results, ("bbox", "segm") if masks else ("bbox",))
    names = dataset_names(cfg)
    train_names = names[:1] if len(names) > 1 else []
    train_images = sum((summaries or {}).get(n, {}).get("images_with_annotations", 0) for n in train_names)
    batch = OmegaConf.select(cfg, "dataloader.train.total_batch_size", default=0)
    out = metrics_record("detection", family(names), init, model_name(cfg), metrics, iterations,
                         round(iterations * batch / train_images, 3) if train_images and iterations else None,
                         round(wall_time, 1), os.path.join(cfg.train.output_dir, "config.yaml"),
                         per_category_AP=per_category, notes=notes, peak_memory_gib=peak_gpu_memory_gib())
    path = path or os.path.join(cfg.train.output_dir, "metrics.json")
    write_json(path, out)
    for note in notes:
        logger.warning(note)
    logger.info("wrote %s", path)
    return out


def init_info(checkpointer, init_checkpoint: str, method: str = None) -> dict:
    """metrics.json's `init`: the method (given, else read from a pretraining checkpoint's config, else
    "pretrained"; "random" without a checkpoint) and the checkpoint path."""
    if not init_checkpoint:
        return {"method": method or "random", "checkpoint": None}
    found = (checkpointer.last_load or {}).get("method") if checkpointer else None
    return {"method": method or found or "pretrained", "checkpoint": init_checkpoint}


# ---------------------------------------------------------------------------------------------------- training
def writers(output_dir: str, max_iter: int):
    """detectron2's default writers, except that the per-step JSON goes to log.jsonl (metrics.json is the final
    results file of docs/conventions.md) and tensorboard events to tensorboard/."""
    os.makedirs(output_dir, exist_ok=True)
    return [CommonMetricPrinter(max_iter), JSONWriter(os.path.join(output_dir, "log.jsonl")),
            TensorboardXWriter(os.path.join(output_dir, "tensorboard"))]


class RunState(HookBase):
    """What a resumed run needs beyond detectron2's trainer state, saved with it in every checkpoint: the seed of
    the training sample order (so that data.ResumableTrainingSampler continues it) and the wall time spent so far
    (so that metrics.json's wall_time_s covers every piece of a resumed run), and the number of processes that
    wrote it (a resume on another number is refused)."""

    def __init__(self, seed: int):
        self.seed, self.elapsed, self.since = seed, 0.0, time.time()
        self.saved_world_size = None  # of the checkpoint resumed from

    def seconds(self) -> float:
        return self.elapsed + time.time() - self.since

    def state_dict(self):
        return {"seed": self.seed, "elapsed_s": self.seconds(), "world_size": comm.get_world_size()}

    def load_state_dict(self, state):
        self.seed, self.elapsed, self.since = state["seed"], state["elapsed_s"], time.time()
        self.saved_world_size = state.get("world_size")


class StopTraining(BaseException):
    """Raised by StopEarly to leave detectron2's loop (a BaseException: detectron2 logs an Exception as a crash)."""


class StopEarly(HookBase):
    """Stop cleanly at a step boundary after `minutes` of training (None: no limit) or when a stop signal arrived
    (SIGTERM / SIGUSR1, what SLURM sends before a time limit or a preemption): save a resumable checkpoint of the
    iteration just finished and leave the loop; `--resume` continues from it. All processes stop at the same
    iteration."""

    def __init__(self, minutes, checkpointer, signals: StopSignals):
        self.seconds = None if minutes is None else minutes * 60
        self.checkpointer, self.signals = checkpointer, signals

    def before_train(self):
        self.start = time.perf_counter()

    def after_step(self):
        if self.trainer.iter + 1 >= self.trainer.max_iter:
            return
        reason = self.signals.received or (
            "time limit" if self.seconds is not None and time.perf_counter() - self.start > self.seconds else None)
        if comm.get_world_size() > 1:
            reason = next((r for r in comm.all_gather(reason) if r), None)
        if reason:
            name = f"model_{self.trainer.iter:07d}"
            if comm.is_main_process():
                self.checkpointer.save(name, iteration=self.trainer.iter)
            comm.synchronize()  # every process leaves once the file is written
            raise StopTraining(reason, self.trainer.iter, os.path.join(self.checkpointer.save_dir, f"{name}.pth"))


def do_train(cfg, resume: bool = False, init_method: str = None, summaries=None, extra_hooks=(),
             time_limit_min: float = None):
    """Train as detectron2's lazyconfig_train_net does; returns metrics.json's content (main process), or None
    (other processes, or stopped by `time_limit_min` with a resumable checkpoint). A stop signal saves a
    checkpoint and raises Preempted. `extra_hooks` are appended after the standard ones (tests use one to
    simulate a crash)."""
    signals = StopSignals()
    try:
        return _do_train(cfg, resume, init_method, summaries, extra_hooks, time_limit_min, signals)
    finally:
        signals.close()


def _do_train(cfg, resume, init_method, summaries, extra_hooks, time_limit_min, signals):
    state = RunState(cfg.train.seed if cfg.train.seed >= 0 else comm.shared_random_seed())
    model, optimizer = build_model_and_optimizer(cfg)
    model = wrap_ddp(model, cfg)
    # the loader is built once the start iteration is known (after resume_or_load): the trainer makes its
    # iterator only when training starts
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(model, None, optimizer)
    checkpointer = StrictDetectionCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    last = {}

    def evaluate():
        last["results"] = do_test(cfg, model)
        last["iteration"] = min(trainer.iter + 1, cfg.train.max_iter)  # trainer.iter is max_iter after training
        return last["results"]

    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        state,
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None,
        hooks.EvalHook(cfg.train.eval_period, evaluate),
        # before the writer: when it stops the run, the writer's final flush is this iteration's only write
        StopEarly(time_limit_min, checkpointer, signals),
        hooks.PeriodicWriter(writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period)
        if comm.is_main_process() else None,
        *extra_hooks,
    ])
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=resume)
    resumed = resume and checkpointer.has_checkpoint()
    start_iter = trainer.iter + 1 if resumed else 0
    if resumed:
        refuse_other_process_count(checkpointer.get_checkpoint_file(), state.saved_world_size, comm.get_world_size())
        logger.info("resuming from %s at iteration %d", checkpointer.get_checkpoint_file(), start_iter)
        # augmentation and drop-path randomness: a fresh stream per start point, not a replay of the first one
        seed_all_rng(state.seed + start_iter + comm.get_rank())
    trainer.data_loader = build_train_loader(cfg.dataloader.train, state.seed, start_iter)
    logger.info("training sample order: seed %d, from sample %d of each process's stream", state.seed,
                start_iter * cfg.dataloader.train.total_batch_size // comm.get_world_size())
    init = init_info(checkpointer if not resumed else None, cfg.train.init_checkpoint, init_method)
    if resumed:
        init = read_init(cfg.train.output_dir) or init
    if comm.is_main_process():
        write_init(cfg.train.output_dir, init)
    try:
        trainer.train(start_iter, cfg.train.max_iter)
    except StopTraining as stop:
        reason, iteration, path = stop.args
        if reason != "time limit":
            raise Preempted(reason, iteration, path, "--resume") from None
        logger.info("time limit of %s min reached after iteration %d: checkpoint saved, continue with --resume",
                    time_limit_min, iteration)
        return None
    if not comm.is_main_process() or "results" not in last:
        return None
    return write_metrics(cfg, last["results"], last["iteration"], state.seconds(), init, summaries)


def do_eval_only(cfg, resume: bool = False, init_method: str = None, summaries=None):
    start = time.time()
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    checkpointer = StrictDetectionCheckpointer(model, cfg.train.output_dir)
    path = cfg.train.init_checkpoint
    if resume and checkpointer.has_checkpoint():
        path = checkpointer.get_checkpoint_file()
    if not path:
        raise UserError("--eval-only needs weights: train.init_checkpoint=<run>/model_final.pth, or --resume "
                        "with the run's --output-dir")
    extra = checkpointer.load(path)
    if not checkpointer.last_load["full"]:
        raise UserError(f"{path} holds only a backbone; --eval-only needs a trained detector, e.g. "
                        "<run dir>/model_final.pth")
    model = wrap_ddp(model, cfg)
    results = do_test(cfg, model)
    if not comm.is_main_process():
        return None
    iterations = extra.get("iteration", -1) + 1  # detectron2 checkpoints store the last finished iteration
    init = read_init(os.path.dirname(os.path.abspath(path)))  # the training run's own record
    if init_method or not init:
        init = {"method": init_method or "unknown", "checkpoint": path}
    return write_metrics(cfg, results, iterations, time.time() - start, init, summaries)


def own_dataset_paths(args) -> dict:
    """The paths of a user's own COCO-format set given on the command line ({} when none)."""
    keys = [f"{split}_{kind}" for split in ("train", "val") for kind in ("annotations", "images")]
    return {k: getattr(args, k) for k in keys if getattr(args, k, None)}


def run(args):
    """What one process runs under detectron2's `launch`: install the loaders' worker hook, register the datasets,
    set up logging, train or evaluate. `args` carries config_file, opts, output_dir, data_root, resume, eval_only,
    init_method."""
    cfg = load_config(args.config_file, args.opts, args.output_dir)
    install_worker_init()
    register_datasets(resolve_root(args.data_root))
    if own_dataset_paths(args):
        use_own_dataset(cfg, own_dataset_paths(args))
    resolve_device(cfg)
    summaries = getattr(args, "dataset_summaries", None)
    match_mask_format(cfg, summaries)
    default_setup(cfg, args)
    try:
        if args.eval_only:
            return do_eval_only(cfg, args.resume, args.init_method, summaries)
        return do_train(cfg, args.resume, args.init_method, summaries,
                        time_limit_min=getattr(args, "time_limit_min", None))
    finally:
        # leave together and take the group down before exiting: a process that exits while gloo's threads
        # still serve a peer can abort ("terminate called without an active exception")
        if torch.distributed.is_initialized():
            if not sys.exc_info()[0]:
                comm.synchronize()
            torch.distributed.destroy_process_group()

