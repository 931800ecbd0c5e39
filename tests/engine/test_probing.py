"""tools/probe.py's run and the pretraining monitor on the toy scenes, with a micro encoder."""
import json
import os

import pytest
import torch

from asl.cli import UserError
from asl.config import apply_overrides, load_config
from asl.engine.pretrain import run_pretrain
from asl.engine.probing import run_probes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICRO = ["model.arch='vit_micro_patch8'", "model.img_size=32", "probe.toy=None", "probe.batch_size=16",
         "probe.dense_fit.epochs=3", "probe.linear.epochs=10"]


def probe_cfg(toy_root, *overrides):
    cfg = load_config(os.path.join(REPO, "configs", "probe", "toy.py"))
    coco = toy_root / "coco"
    return apply_overrides(cfg, [*MICRO, f"probe.objects.annotations={coco}/annotations/instances_{{split}}.json",
                                 f"probe.objects.images={coco}/{{split}}",
                                 f"probe.dense.path={toy_root}/ade", *overrides])


def test_probe_run_writes_the_three_measures_and_is_deterministic(toy_root, tmp_path):
    first = run_probes(probe_cfg(toy_root), str(tmp_path / "a"))
    again = run_probes(probe_cfg(toy_root), str(tmp_path / "b"))
    m = first["metrics"]
    assert m == again["metrics"] and first["init"]["method"] == "random" and first["stage"] == "probe"
    assert all(0 <= m[k] <= 100 for k in ("knn_top1", "linear_top1", "dense_mIoU"))
    assert len(m["dense_IoU_per_class"]) == 5  # background and the four shapes
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["metrics"] == m


def test_image_probes_and_object_probes_read_their_own_sets(toy_root, tmp_path, capsys):
    """kNN / linear on whole images (class folders, here the toy crops) instead of the objects; one of the two."""
    images = probe_cfg(toy_root, "probe.objects=None",
                       f"probe.classification={{'dataset': 'toy', 'path': '{toy_root}'}}")
    assert run_probes(images, str(tmp_path / "images"))["dataset"] == "toy_scenes + toy_scenes"
    assert "train / val images of toy_scenes" in capsys.readouterr().out
    assert run_probes(probe_cfg(toy_root), str(tmp_path / "objects"))["dataset"] == "toy_scenes objects + toy_scenes"
    assert "train / val objects of toy_scenes objects" in capsys.readouterr().out
    both = probe_cfg(toy_root, f"probe.classification={{'dataset': 'toy', 'path': '{toy_root}'}}")
    with pytest.raises(UserError, match="one of probe.objects .* and probe.classification"):
        run_probes(both, str(tmp_path / "both"))


def test_pretraining_monitor_logs_probes_and_leaves_training_untouched(toy_root, tmp_path):
    probe = probe_cfg(toy_root)["probe"]
    base = apply_overrides(load_config(os.path.join(REPO, "configs", "pretrain", "toy_asl.py")), [
        "model.arch='vit_micro_patch8'", "model.img_size=32", "model.decoder={'embed_dim': 32, 'depth': 1, "
        "'num_heads': 2}", "data.num_workers=0", "optim.batch_size=8", "runtime.tensorboard=False",
        f"data.path={toy_root / 'unlabeled'}", "optim.epochs=3"])
    watched = apply_overrides(dict(base, probe=probe), ["runtime.eval_every=2"])
    run_pretrain(base, str(tmp_path / "plain"))
    run_pretrain(watched, str(tmp_path / "watched"))
    logged = [json.loads(line) for line in open(tmp_path / "watched" / "log.jsonl")]
    probes = [r for r in logged if "probe/knn_top1" in r]
    # every 2 epochs, and at the end (docs/probes.md)
    assert [r["epoch"] for r in probes] == [2, 3] and all("probe/dense_mIoU" in r for r in probes)
    weights = [torch.load(tmp_path / run / "checkpoints" / "last.pth", weights_only=True)["model"]
               for run in ("plain", "watched")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_the_probe_tasks_budget_line_says_what_the_probes_fit(tmp_path):
    """The chain's table reports a probe run by its probes' settings (read from its saved config), not by the 0
    encoder iterations it trains."""
    from transfer.probe.task import TASKS

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"probe": {"knn": {"k": 7}, "linear": {"epochs": 12}, "dense_fit": {"epochs": 3}}}))
    (task,) = TASKS
    assert task.budget_of({"iterations": 0, "config": str(config)}) == (
        "frozen encoder; kNN k=7, linear probe 12 epochs, dense linear probe 3 epochs")
