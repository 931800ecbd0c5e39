"""The body of tools/train_seg.py: an mmengine config + command-line options -> mmengine Runner -> training (or
evaluation of a checkpoint) -> metrics.json in the run directory (docs/conventions.md).

What this adds to mmseg's own tools/train.py: strict loading everywhere (encoder weights, --resume, --eval-only),
AMP that falls back to fp32 on a CPU, clear errors for missing datasets / weights, the toy scenes generated when
absent, and the results-table file.
"""
import argparse
import inspect
import os
import re
import time

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.dist import is_main_process
from mmengine.runner import Runner
from mmengine.runner.checkpoint import find_latest_checkpoint

from asl.checkpoint import read_checkpoint
from asl.cli import UserError, apply_data_root
from asl.config import check_key
from asl.engine.launch import detect_launch, device_for, export_torchrun_env, join_group
from asl.engine.logger import peak_gpu_memory_gib
from asl.engine.runtime import (
    claim_run_dir,
    refuse_changed_config,
    refuse_other_process_count,
    with_time_limit_signal_ignored,
)
from asl.records import INIT_FILE, metrics_record, read_init, write_init, write_json
from asl.signals import Preempted, StopSignals

from .checkpoint import install_safe_loader, safe_torch_load
from .data import check_data_roots, read_classes, set_data_root, use_own_label_maps
from .hooks import JsonLinesHook, StopOnSignalHook, StopTraining
from .metrics import PER_CLASS_PREFIX

AMP_ONLY_KEYS = ("loss_scale", "dtype", "use_fsdp")
# overrides that may change between the pieces of one run (resources, logging, where things are written)
RESUMABLE_KEYS = ("*num_workers", "*persistent_workers", "default_hooks.logger.*", "work_dir", "launcher",
                  "env_cfg.*", "log_processor.*", "visualizer.*", "resume", "load_from", "model.backbone.init_cfg.*",
                  "asl_init.*", "*data_root", "*data_prefix.*")
RUN_FILES = ("iter_*.pth", "epoch_*.pth", "best_*.pth", "last_checkpoint", "metrics.json", INIT_FILE,
             "log.jsonl", "20[0-9][0-9][0-9][0-9][0-9][0-9]_[0-9][0-9][0-9][0-9][0-9][0-9]")


class SegRunner(Runner):
    """mmengine's Runner with strict checkpoint loading (resume, load_from, --eval-only): a checkpoint that does
    not fit the model is a one-line UserError instead of a warning followed by training a half-loaded model; its
    checkpoints record the number of processes (prepare refuses a resume on another)."""

    loaded_meta = None

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        """mmengine's loader, whose workers also leave SIGUSR1 to the main process (which saves at an
        iteration boundary; SLURM signals every process of a step)."""
        loader = Runner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        if isinstance(loader, torch.utils.data.DataLoader) and loader.num_workers:
            loader.worker_init_fn = with_time_limit_signal_ignored(loader.worker_init_fn)
        return loader

    def load_checkpoint(self, filename, map_location="cpu", strict=False, revise_keys=((r"^module\.", ""),)):
        try:
            checkpoint = super().load_checkpoint(filename, map_location=map_location, strict=True,
                                                 revise_keys=revise_keys)
        except RuntimeError as err:
            text = str(err)
            keys = re.search(r"(unexpected key in source state_dict|missing keys in source state_dict|"
                             r"size mismatch for [^\n]*?)[:\s]+([^\n]*)", text)
            detail = f"{keys.group(1)}: {keys.group(2)[:200]}" if keys else text.strip().splitlines()[-1][:300]
            hint = (" (a backbone-only file from tools/convert_ckpt.py initialises training: use --pretrained)"
                    if "decode_head" in text and "missing" in text else "")
            raise UserError(f"{filename} does not fit the config's model: {detail}{hint}") from None
        if isinstance(checkpoint, dict):
            self.loaded_meta = checkpoint.get("meta")
        return checkpoint

    def save_checkpoint(self, out_dir, filename, *args, meta=None, **kwargs):
        """mmengine's, with the number of processes in the meta: a resume on another number is refused."""
        return super().save_checkpoint(out_dir, filename, *args, meta={**(meta or {}), "world_size": self.world_size},
                                       **kwargs)


class FormattedOnceConfig(Config):
    """A Config whose `pretty_text` is formatted once per content: mmengine formats the whole config with yapf,
    which is slow on a CPU, for the log, for the dumped copy and again for every checkpoint it saves."""

    @property
    def pretty_text(self) -> str:
        key = repr(self._cfg_dict)
        cached = self.__dict__.get("_pretty_cache")
        if cached is None or cached[0] != key:
            cached = (key, Config.pretty_text.fget(self))
            object.__setattr__(self, "_pretty_cache", cached)
        return cached[1]

    @classmethod
    def from_config(cls, cfg: Config) -> "FormattedOnceConfig":
        """`cfg` as a FormattedOnceConfig, its content shared (Config's own pickling state, not a copy)."""
        formatted = cls.__new__(cls)
        formatted.__setstate__(cfg.__getstate__())
        return formatted


def _parse_overrides(tokens):
    bad = [t for t in tokens if "=" not in t or t.startswith("=")]
    if bad:
        raise UserError(f"override {bad[0]!r} is not key=value")
    namespace = argparse.Namespace()
    DictAction(option_strings=[], dest="o")(None, namespace, tokens)
    return namespace.o


def check_override_keys(cfg, options):
    for key in options:
        check_key(cfg, key, lambda node: _type_arguments(node.get("type")))


def _type_arguments(type_):
    """The argument names of a registered `type` (a class or a registry name); None: it takes any (**kwargs) or
    it cannot be found (then nothing is refused)."""
    from mmseg import registry

    if type_ is None:
        return set()
    if isinstance(type_, str):
        found = None
        for name in ("MODELS", "DATASETS", "TRANSFORMS", "OPTIMIZERS", "OPTIM_WRAPPERS", "PARAM_SCHEDULERS",
                     "HOOKS", "METRICS", "LOOPS", "DATA_SAMPLERS", "VISUALIZERS", "LOG_PROCESSORS", "EVALUATOR"):
            found = found or getattr(registry, name).get(type_)
        if found is None:
            return None
        type_ = found
    try:
        params = inspect.signature(type_).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None
    return set(params) - {"self"}


def load_config(path, options=None) -> Config:
    """The config file (with `options` merged); a missing or malformed file is a UserError."""
    if not os.path.isfile(path):
        raise UserError(f"config {path} does not exist")
    try:
        cfg = Config.fromfile(path)
    except (SyntaxError, FileNotFoundError, KeyError, NameError, ImportError) as err:
        raise UserError(f"cannot read config {path}: {str(err).splitlines()[0]}") from None
    if options:
        cfg.merge_from_dict(options)
    return cfg


def sync_schedule(cfg, old, options):
    """An override of the iteration budget (train_cfg.max_iters, or the config's own `max_iters` variable) also
    moves what the config tied to that variable: the end of the lr schedules and a validation interval equal to it
    (mmengine resolves those when the file is read, so an override alone would leave them behind)."""
    if "train_cfg.max_iters" in options:
        new = options["train_cfg.max_iters"]
    elif "max_iters" in options:
        new = options["max_iters"]
    else:
        return
    if not isinstance(new, int) or new < 1:
        raise UserError(f"max_iters must be a positive integer, got {new!r}")
    cfg.train_cfg.max_iters = new
    if not isinstance(old, int) or old == new:
        return
    schedulers = cfg.get("param_scheduler") or []
    schedulers = list(schedulers) if isinstance(schedulers, (list, tuple)) else [schedulers]
    for sched in schedulers:
        if sched.get("end") == old:
            sched["end"] = new
    kept = [s for s in schedulers if s.get("begin", 0) < s.get("end", float("inf"))]
    if len(kept) < len(schedulers):  # e.g. a decay that would start after a budget shorter than the warmup
        print(f"note: max_iters={new} ends before {len(schedulers) - len(kept)} lr schedule(s) would start; "
              "they are left out", flush=True)
        cfg.param_scheduler = kept
    if cfg.train_cfg.get("val_interval") == old:
        cfg.train_cfg.val_interval = new
    cfg.max_iters = new


def _has_accelerator():
    return torch.cuda.is_available()


def configure_amp(cfg, requested: bool):
    """--amp switches to mmengine's AmpOptimWrapper (mmseg ignores `fp16=dict(...)`); an AmpOptimWrapper in
    the config falls back to fp32 on a machine without a GPU, which mmengine's AMP wrapper refuses."""
    wrapper = cfg.optim_wrapper
    if requested:
        if not _has_accelerator():
            raise UserError("--amp needs a GPU: mmengine's AmpOptimWrapper does not run on a CPU")
        wrapper.type = "AmpOptimWrapper"
        wrapper.setdefault("loss_scale", "dynamic")
    elif wrapper.get("type") == "AmpOptimWrapper" and not _has_accelerator():
        print("note: no GPU, so the config's AmpOptimWrapper runs as a plain fp32 OptimWrapper", flush=True)
        wrapper.type = "OptimWrapper"
        for key in AMP_ONLY_KEYS:
            wrapper.pop(key, None)


def _pretraining_method(path):
    """'asl' / 'mae' as tools/convert_ckpt.py recorded it in the file's meta, else None."""
    try:
        obj = read_checkpoint(path)
    except UserError:
        return None
    meta = obj.get("meta") if isinstance(obj, dict) else None
    method = meta.get("method") if isinstance(meta, dict) else None
    return method if isinstance(method, str) else None


def prepare(args) -> Config:
    """Config + command line -> the config the Runner gets (no Runner built yet). Raises UserError on mistakes."""
    apply_data_root(args.data_root)  # before the config is read: its data_root names $ASL_DATASETS
    options = _parse_overrides(args.overrides)
    options.update(args.cfg_options or {})
    cfg = load_config(args.config)
    original_max_iters = cfg.get("max_iters")
    check_override_keys(cfg, options)
    try:
        cfg.merge_from_dict(options)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise UserError(f"cannot apply the overrides {' '.join(args.overrides + list(args.cfg_options or {}))}: "
                        f"{err}") from None
    name = os.path.splitext(os.path.basename(args.config))[0]
    cfg.work_dir = args.output_dir or cfg.get("work_dir") or os.path.join("work_dirs", "segmentation", name)
    if args.launcher == "auto":  # join an srun / torchrun launch here, so mmengine finds the group formed
        launch = detect_launch()
        if launch.world_size > 1:
            export_torchrun_env(launch)
            join_group(launch, device_for(launch))
        args.launcher = "pytorch" if launch.world_size > 1 else "none"
    cfg.launcher = args.launcher
    if args.launcher != "none" and not _has_accelerator():
        cfg.setdefault("env_cfg", ConfigDict()).setdefault("dist_cfg", ConfigDict())["backend"] = "gloo"
        # mmengine's default wrapper passes device_ids=[LOCAL_RANK], which DistributedDataParallel refuses for a
        # CPU module; device_ids=None is its CPU form (given here, it wins over mmengine's default)
        wrapper = cfg.get("model_wrapper_cfg") or ConfigDict(type="MMDistributedDataParallel")
        wrapper.setdefault("device_ids", None)
        wrapper.setdefault("broadcast_buffers", False)  # as mmengine's default wrapper
        cfg.model_wrapper_cfg = wrapper
    sync_schedule(cfg, original_max_iters, options)
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg.get(name)
        if loader and loader.get("num_workers") == 0 and loader.get("persistent_workers"):
            loader.persistent_workers = False  # PyTorch refuses persistent workers without workers
    if args.data_path:
        set_data_root(cfg, args.data_path)
    own = {k: getattr(args, k) for k in ("train_images", "train_labels", "val_images", "val_labels")
           if getattr(args, k, None)}
    if own or args.classes:
        if not args.classes:
            raise UserError("your own label maps need --classes (the class names in label order)")
        classes = read_classes(args.classes)
        use_own_label_maps(cfg, own, classes, args.ignore_index, args.reduce_zero_label)
        print(f"your dataset: {len(classes)} classes ({', '.join(classes)}), ignore index {args.ignore_index}"
              f"{', label 0 ignored' if args.reduce_zero_label else ''}", flush=True)
    configure_amp(cfg, args.amp)
    init_cfg = cfg.model.backbone.get("init_cfg") or ConfigDict(type="Pretrained", checkpoint=None)
    if args.init:
        init_cfg = ConfigDict(type="Pretrained", checkpoint=args.init)
    cfg.model.backbone.init_cfg = init_cfg
    pretrained = init_cfg.get("checkpoint") if init_cfg.get("type") == "Pretrained" else None
    cfg.resume, cfg.load_from = False, cfg.get("load_from")
    if args.eval_only and args.resume:
        raise UserError("--eval-only and --resume exclude each other")
    init = {"method": args.init_name or "random", "checkpoint": None}
    if args.eval_only:
        if not os.path.isfile(args.eval_only):
            raise UserError(f"checkpoint {args.eval_only} does not exist")
        cfg.load_from = args.eval_only
        check_data_roots(cfg, loaders=("test_dataloader",))
        if not args.init_name:
            init = read_init(os.path.dirname(os.path.abspath(args.eval_only))) or init
        cfg.asl_init = init
        return cfg
    resume_from = None
    if args.resume not in (None, "auto"):
        if not os.path.isfile(args.resume):
            raise UserError(f"checkpoint {args.resume} does not exist")
        resume_from = args.resume
    elif args.resume:
        resume_from = find_latest_checkpoint(cfg.work_dir) if os.path.isdir(cfg.work_dir) else None
        if resume_from is None:
            print(f"note: --resume: no checkpoint in {cfg.work_dir} yet, starting a new run", flush=True)
    holds_run = os.path.exists(os.path.join(cfg.work_dir, "last_checkpoint"))
    if resume_from and holds_run:
        refuse_changed_resume(cfg)
    if resume_from:  # before anything is built or written (mmengine checks it only for configs listing gpu_ids)
        meta = safe_torch_load(resume_from).get("meta") or {}
        refuse_other_process_count(resume_from, meta.get("world_size"), detect_launch().world_size)
    claim_run_dir(cfg.work_dir, holds_run, bool(args.resume), args.force, detect_launch().rank == 0, RUN_FILES,
                  "--resume", keep=[pretrained])
    if resume_from:
        cfg.resume, cfg.load_from = True, resume_from
        # the weights come from the checkpoint; the encoder's initialisation is that of the original run
        cfg.model.backbone.init_cfg = ConfigDict(type="Pretrained", checkpoint=None)
        init = read_init(cfg.work_dir, os.path.dirname(os.path.abspath(resume_from))) or init
    elif pretrained:
        if not os.path.isfile(pretrained):
            raise UserError(f"pretrained weights {pretrained} do not exist: convert a pretraining checkpoint with "
                            "tools/convert_ckpt.py SRC --to mmseg -o FILE, or leave --pretrained out for random "
                            "initialisation")
        init = {"method": args.init_name or _pretraining_method(pretrained) or "pretrained",
                "checkpoint": os.path.abspath(pretrained)}
    check_data_roots(cfg)
    norms = _norm_types(cfg.model)
    single = detect_launch().world_size == 1
    if cfg.train_dataloader.get("batch_size", 2) < 2 and ("BN" in norms or ("SyncBN" in norms and single)):
        raise UserError(f"train_dataloader.batch_size={cfg.train_dataloader.batch_size}: the heads' BatchNorm needs "
                        "at least 2 images per process (or SyncBN over several processes); use 2 or more (the "
                        "recipe: 2 per GPU on 8 GPUs)")
    cfg.asl_init = init
    return cfg


def _norm_types(node) -> set:
    """The `type`s of every norm_cfg in a model config."""
    if isinstance(node, dict):
        found = {node["norm_cfg"].get("type")} if isinstance(node.get("norm_cfg"), dict) else set()
        return found.union(*(_norm_types(v) for v in node.values()))
    if isinstance(node, (list, tuple)):
        return set().union(*(_norm_types(v) for v in node))
    return set()


def refuse_changed_resume(cfg):
    """--resume refuses a config that differs from the run's (the copy mmengine keeps in the run directory)
    beyond RESUMABLE_KEYS."""
    saved = os.path.join(cfg.work_dir, os.path.basename(cfg.filename or ""))
    if cfg.filename and os.path.isfile(saved):
        refuse_changed_config(Config.fromfile(saved).to_dict(), cfg.to_dict(), RESUMABLE_KEYS)


def _find_hook(runner, kind):
    return next((h for h in runner.hooks if isinstance(h, kind)), None)


def write_metrics(runner, cfg, metrics, wall_time, eval_only=False):
    """metrics.json in the run directory (docs/conventions.md); returns the record."""
    info = cfg.get("run_info") or {}
    if eval_only:
        iters = (runner.loaded_meta or {}).get("iter", 0)
    else:
        iters = runner.iter
    epochs = None
    try:
        loader = runner.train_dataloader if not eval_only else None
        if loader is not None:
            world = runner.world_size
            epochs = iters * loader.batch_size * world / len(loader.dataset)
    except Exception:  # noqa: BLE001  (no train loader in the config: epochs unknown)
        epochs = None
    if epochs is None and info.get("train_images"):
        batch = cfg.train_dataloader.batch_size * runner.world_size
        epochs = iters * batch / info["train_images"]
    config_name = os.path.basename(cfg.filename) if cfg.filename else f"{runner.timestamp}.py"
    per_class = {k[len(PER_CLASS_PREFIX):]: float(v) for k, v in (metrics or {}).items()
                 if k.startswith(PER_CLASS_PREFIX)}
    record = metrics_record("segmentation", info.get("dataset", "unknown"), cfg.asl_init, info.get("model", "unknown"),
                            {k: float(metrics[k]) for k in ("mIoU", "mAcc", "aAcc") if k in (metrics or {})},
                            int(iters), round(epochs, 3) if epochs is not None else None, round(wall_time, 1),
                            os.path.join(runner.work_dir, config_name), eval_only=bool(eval_only),
                            per_class_IoU=per_class, peak_memory_gib=peak_gpu_memory_gib())
    if eval_only:
        record["checkpoint"] = cfg.load_from
    if is_main_process():
        write_json(os.path.join(runner.work_dir, "metrics.json"), record)
    return record


def run(args) -> dict:
    """Train (or evaluate) as the command line says; returns the metrics.json record."""
    start = time.time()
    install_safe_loader()
    cfg = FormattedOnceConfig.from_config(prepare(args))
    runner = SegRunner.from_cfg(cfg)
    if args.eval_only:
        metrics = runner.test()
    else:
        if is_main_process() and not cfg.resume:
            os.makedirs(cfg.work_dir, exist_ok=True)
            write_init(cfg.work_dir, cfg.asl_init)
        signals = StopSignals()
        runner.register_hook(StopOnSignalHook(signals))
        try:
            runner.train()
        except StopTraining as stop:
            raise Preempted(*stop.args, "--resume") from None
        finally:
            signals.close()
        hook = _find_hook(runner, JsonLinesHook)
        metrics = hook.last_metrics if hook else None
        if metrics is None:  # no validation ran (e.g. val_cfg removed): evaluate the final model now
            metrics = runner.val() if runner._val_loop is not None else {}
    hook = _find_hook(runner, JsonLinesHook)
    wall = hook.elapsed() if hook and not args.eval_only else time.time() - start
    record = write_metrics(runner, cfg, metrics, wall, eval_only=bool(args.eval_only))
    if is_main_process():
        shown = ", ".join(f"{k} {v:.2f}" for k, v in record["metrics"].items())
        print(f"{'evaluation' if args.eval_only else 'training'} done: {shown} "
              f"({record['iterations']} iterations, {record['wall_time_s']:.0f} s); "
              f"wrote {os.path.join(runner.work_dir, 'metrics.json')}", flush=True)
    return record


__all__ = ["SegRunner", "configure_amp", "load_config", "prepare", "run",
           "write_metrics"]
