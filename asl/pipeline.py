"""From pretraining to a results table: data -> pretrain (ASL, MAE) -> convert -> detection -> segmentation ->
linear probing -> fine-tuning -> table, every transfer stage for each initialisation (ASL, MAE, random) with
the same budget. Each stage is a tool run in its own process; a stage whose metrics.json exists is reused, so a
rerun continues where the last one stopped. Only file paths and command lines are known here."""
import glob
import json
import os
import subprocess
import sys
import time

from .cli import UserError
from .engine.runtime import EXIT_PREEMPTED, StopSignals
from .results import collect, write_table

STAGES = ("data", "pretrain", "visualize", "convert", "detection", "segmentation", "linprobe", "finetune", "table")
TRANSFER_STAGES = ("detection", "segmentation", "linprobe", "finetune")  # a config may leave one out (None)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool(name, nproc: int = 1):
    """The command line of a tool, under torchrun when a stage asks for several processes per node."""
    launcher = ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}"] if nproc > 1 else []
    return [sys.executable, *launcher, os.path.join(REPO, "tools", name)]


class Pipeline:
    def __init__(self, cfg: dict, work_dir: str, data_root: str = None, force: bool = False):
        # absolute, so that results.json names files that can be found from anywhere
        self.cfg, self.work_dir, self.data_root, self.force = cfg, os.path.abspath(work_dir), data_root, force
        self.inits = cfg["inits"]  # e.g. ["asl", "mae", "random"]
        self.times = {}
        self.tools_run = 0  # tool processes started; a stage that only reused results keeps its recorded time

    def path(self, *parts):
        return os.path.join(self.work_dir, *parts)

    def run(self, stages):
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise UserError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
        for stage in STAGES:
            if stage in stages and stage in TRANSFER_STAGES and self.cfg.get(stage) is None:
                print(f"[pipeline] === {stage}: not part of this config, skipped ===", flush=True)
            elif stage in stages:
                start, tools_before = time.time(), self.tools_run
                print(f"[pipeline] === {stage} ===", flush=True)
                getattr(self, f"stage_{stage}")()
                if self.tools_run > tools_before or stage in ("data", "table"):
                    self.times[stage] = time.time() - start
                    print(f"[pipeline] {stage} took {self.times[stage]:.0f} s", flush=True)
        times_file = self.path("stage_times.json")
        if os.path.exists(times_file):  # a partial rerun keeps the times of the stages it did not run
            with open(times_file) as f:
                self.times = {**json.load(f), **self.times}
        os.makedirs(self.work_dir, exist_ok=True)
        with open(times_file, "w") as f:
            json.dump(self.times, f, indent=2)

    def _call(self, cmd, run_dir, what):
        """Run a tool unless its metrics.json exists (then reuse it); an interrupted run (killed, preempted)
        continues from its own checkpoint, a forced one starts over. Fails with the stage named."""
        metrics = os.path.join(run_dir, "metrics.json")
        if os.path.exists(metrics) and not self.force:
            print(f"[pipeline] {what}: reusing {metrics}", flush=True)
            return
        cmd = [*cmd, "--force" if self.force else "--resume"]
        print(f"[pipeline] {what}: {' '.join(cmd[1:])}", flush=True)
        env = dict(os.environ, **({"ASL_DATASETS": self.data_root} if self.data_root else {}))
        self.tools_run += 1
        signals = StopSignals()  # a stop signal is the tool's to act on (it saves and exits 75); this one waits
        try:
            returncode = subprocess.run(cmd, env=env).returncode
        finally:
            signals.close()
        if returncode == EXIT_PREEMPTED:
            print(f"[pipeline] {what} stopped at a checkpoint (preempted); rerun the same command to continue",
                  file=sys.stderr, flush=True)
            sys.exit(EXIT_PREEMPTED)
        if returncode:
            raise UserError(f"stage '{what}' failed (its output is above); fix it and rerun: finished stages are "
                            "reused and an interrupted one continues from its checkpoint")
        if not os.path.exists(metrics):
            raise UserError(f"stage '{what}' finished without writing {metrics}")

    def pretrained(self, method):
        return self.path("pretrain", method, "checkpoints", "last.pth")

    def stage_data(self):
        toy = self.cfg.get("toy")
        if toy:
            from .cli import dataset_root
            from .data.toy import ensure_toy_scenes

            root = os.path.join(self.data_root or dataset_root(), "toy_scenes")
            meta = ensure_toy_scenes(root, require_match=True, **toy)
            print(f"[pipeline] toy scenes in {root}: {meta['num_unlabeled']} unlabeled, {meta['num_train']} "
                  f"train / {meta['num_val']} val labeled", flush=True)

    def stage_pretrain(self):
        p = self.cfg["pretrain"]
        for method in [m for m in self.inits if m != "random"]:
            run_dir = self.path("pretrain", method)
            cmd = _tool("pretrain.py", p.get("nproc", 1)) + [p["configs"][method], *p.get("overrides", []),
                                                             "--output-dir", run_dir]
            self._call(cmd, run_dir, f"pretrain {method}")

    def stage_visualize(self):
        """Reconstructions of every pretrained model on the same images (config `visualize.images`, default: the
        first four toy val scenes) and the loss curves of all pretraining runs side by side."""
        images = self.cfg.get("visualize", {}).get("images")
        if not images and self.cfg.get("toy"):
            from .cli import dataset_root

            val = os.path.join(self.data_root or dataset_root(), "toy_scenes", "coco", "val")
            images = [os.path.join(val, f) for f in sorted(os.listdir(val))[:4]] if os.path.isdir(val) else []
        if not images:
            print("[pipeline] visualize: no images configured (visualize.images); skipped", flush=True)
            return
        methods = [m for m in self.inits if m != "random"]
        for method in methods:
            out = self.path("figures", method)
            if os.path.exists(os.path.join(out, "reconstructions.png")) and not self.force:
                print(f"[pipeline] visualize {method}: reusing {out}", flush=True)
                continue
            others = [a for m in methods if m != method for a in ("--log", self.path("pretrain", m, "log.jsonl"))]
            cmd = _tool("visualize.py") + [self.pretrained(method), *images, "--out", out, *others]
            self.tools_run += 1
            if subprocess.run(cmd).returncode:
                raise UserError(f"stage 'visualize {method}' failed (its output is above)")

    def convert_targets(self):
        """The frameworks whose files the configured transfer stages read."""
        return [t for t, stage in (("detectron2", "detection"), ("mmseg", "segmentation")) if self.cfg.get(stage)]

    def stage_convert(self):
        for method in [m for m in self.inits if m != "random"]:
            for target in self.convert_targets():
                out = self.path("converted", f"{method}_{target}.pth")
                if os.path.exists(out) and not self.force:
                    continue
                cmd = _tool("convert_ckpt.py") + [self.pretrained(method), "--to", target, "-o", out]
                self.tools_run += 1
                if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode:
                    raise UserError(f"converting {self.pretrained(method)} to {target} failed (see above)")
                print(f"[pipeline] converted {method} -> {out}", flush=True)

    def stage_detection(self):
        d = self.cfg["detection"]
        for method in self.inits:
            run_dir = self.path("detection", method)
            init = [] if method == "random" else ["--init", self.path("converted", f"{method}_detectron2.pth")]
            cmd = _tool("train_det.py") + [d["config"], *d.get("overrides", []), *init, "--init-name", method,
                                           "--output-dir", run_dir, "--num-gpus", str(d.get("num_gpus", 1))]
            self._call(cmd, run_dir, f"detection {method}")

    def stage_segmentation(self):
        s = self.cfg["segmentation"]
        for method in self.inits:
            run_dir = self.path("segmentation", method)
            init = [] if method == "random" else ["--init", self.path("converted", f"{method}_mmseg.pth")]
            cmd = _tool("train_seg.py", s.get("nproc", 1)) + [s["config"], *s.get("overrides", []), *init,
                                                              "--init-name", method, "--output-dir", run_dir]
            self._call(cmd, run_dir, f"segmentation {method}")

    def _classification(self, mode):
        c = self.cfg[mode]
        for method in self.inits:
            run_dir = self.path(mode, method)
            init = [] if method == "random" else ["--init", self.pretrained(method), "--init-name", method]
            cmd = _tool(f"{mode}.py", c.get("nproc", 1)) + [c["config"], *c.get("overrides", []), *init,
                                                            "--output-dir", run_dir]
            self._call(cmd, run_dir, f"{mode} {method}")

    def stage_linprobe(self):
        self._classification("linprobe")

    def stage_finetune(self):
        self._classification("finetune")

    def stage_table(self):
        files = [self.path(stage, m, "metrics.json") for stage in ("detection", "segmentation", "linprobe",
                                                                     "finetune") for m in self.inits]
        files = [f for f in files if os.path.exists(f)]
        if not files:
            raise UserError(f"no transfer results under {self.work_dir} yet; run the transfer stages first")
        paths = write_table(collect(files), self.path("results", "results"), self.cfg.get("title", ""))
        with open(paths["markdown"]) as f:
            print("\n" + f.read(), flush=True)
        print("[pipeline] results: " + ", ".join(paths.values()), flush=True)
        figures = sorted(glob.glob(self.path("figures", "*", "*.png")))
        if figures:
            print("[pipeline] figures: " + ", ".join(figures), flush=True)
        runs = [self.path(stage) for stage in STAGES if os.path.isdir(self.path(stage))]
        print("[pipeline] run directories (logs, checkpoints, metrics.json): " + ", ".join(runs), flush=True)
        return paths
