import importlib.util
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import Mixup

from asl.checkpoint import save_atomic
from asl.cli import UserError
from asl.config import apply_overrides, load_config
from asl.data.classification import build_classification_data
from asl.data.toy import classification_objects
from asl.engine.classification import build_classifier, build_optimizer, evaluate, run_classification
from asl.models import build_pretrain_model
from asl.optim import param_groups

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICRO = ["model.arch='vit_micro_patch8'", "model.img_size=32", "data.num_workers=0", "runtime.tensorboard=False",
         "runtime.eval_every=1"]


def cfg_for(mode, toy_root, *overrides):
    cfg = load_config(os.path.join(REPO, "configs", mode, "toy.py"))
    return apply_overrides(cfg, MICRO + [f"data.path={toy_root}", "optim.batch_size=8", *overrides])


def micro_checkpoint(path):
    torch.manual_seed(0)
    model = build_pretrain_model("vit_micro_patch8", 32, "asl", decoder=dict(embed_dim=32, depth=1, num_heads=2))
    save_atomic({"model": model.state_dict(), "config": {"model": {"arch": "vit_micro_patch8"}}}, path)
    return model


def test_lars_step_equals_hand_computed_update():
    mcfg = dict(arch="vit_micro_patch8", img_size=32, pool="cls", drop_path=0.0, head_init_std=0.01)
    model, _ = build_classifier("linprobe", mcfg, num_classes=3)
    opt = build_optimizer("linprobe", model, dict(momentum=0.9, weight_decay=0.0), lr=0.5)
    head = model.head[1]
    w0, b0 = head.weight.detach().clone(), head.bias.detach().clone()
    gw, gb = torch.randn_like(w0), torch.randn_like(b0)
    head.weight.grad, head.bias.grad = gw.clone(), gb.clone()
    opt.step()
    trust = 0.001 * w0.norm() / gw.norm()  # MAE's LARS: trust ratio on matrices only, no weight decay
    assert torch.allclose(head.weight, w0 - 0.5 * trust * gw, atol=1e-7)
    assert torch.allclose(head.bias, b0 - 0.5 * gb, atol=1e-7)
    assert not any(p.requires_grad for p in model.encoder.parameters())


def test_mixup_cutmix_targets_sum_to_one():
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=4)
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    for _ in range(5):
        _, target = mixup(x.clone(), y)
        assert torch.allclose(target.sum(1), torch.ones(8)) and (target > 0).all()


def test_rand_augment_posterize_at_full_magnitude_gives_a_black_image():
    """MAE's RandAugment reaches magnitude 10, where posterize keeps 0 bits (a newer Pillow raises on that)."""
    from timm.data.auto_augment import AugmentOp, rand_augment_transform

    from asl.engine.classification import install_posterize_fix

    install_posterize_fix()
    img = Image.new("RGB", (16, 16), (200, 130, 70))
    assert AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=10)(img).getextrema() == ((0, 0),) * 3
    assert AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=5)(img).getpixel((0, 0)) == (192, 128, 64)  # 2 bits
    augment = rand_augment_transform("rand-m10-n3-mstd0-inc1", {})
    for _ in range(200):  # every op at full magnitude, none may raise
        augment(img)


def test_random_initialisation_is_timms_vit_init():
    """The from-scratch baseline starts as MAE's models_vit (timm): trunc-normal(0.02) linear layers, zero bias."""
    mcfg = dict(arch="vit_micro_patch8", img_size=32, pool="avg", drop_path=0.1, head_init_std=2e-5)
    model, name = build_classifier("finetune", mcfg, num_classes=3)
    linears = [m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert name == "random" and len(linears) == 4 * 2  # qkv, proj, fc1, fc2 per block
    weights = torch.cat([m.weight.flatten() for m in linears])
    assert abs(weights.std().item() - 0.02) < 0.002  # torch's default: 1 / sqrt(3 fan_in) = 0.05-0.10 here
    assert all((m.bias == 0).all() for m in linears)


def test_toy_classification_samples_are_object_crops(toy_root):
    train, val, classes, name = build_classification_data(dict(dataset="toy", path=str(toy_root)), None, None, "")
    objects = classification_objects(str(toy_root), "val")
    assert name == "toy_scenes" and len(classes) == 4 and len(val) == len(objects) > 16
    file_name, box, label = objects[-1]
    img, y = val[len(val) - 1]
    scene = Image.open(toy_root / "coco" / "val" / file_name).convert("RGB")
    assert y == label and np.array_equal(np.asarray(img), np.asarray(scene.crop(box)))



def test_a_file_that_is_no_image_in_ones_class_folders_is_one_line_before_training(tmp_path, capsys):
    """README, "Your own data": bad input stops the run before training with one line naming the file."""
    for split in ("train", "val"):
        for cls, colour in (("cat", "red"), ("dog", "blue")):
            os.makedirs(tmp_path / split / cls)
            Image.new("RGB", (8, 8), colour).save(tmp_path / split / cls / "a.png")
    folder = dict(dataset="folder", path=str(tmp_path))
    train, val, classes, _ = build_classification_data(folder, None, None, "")
    assert classes == ["cat", "dog"] and len(train) == len(val) == 2
    # a file cut short keeps an intact header (it opens, its size is known): only a full decode finds it
    cut = tmp_path / "train" / "cat" / "c.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:2000])
    assert Image.open(cut).size == (64, 64)
    with pytest.raises(UserError, match=r"^1 file\(s\) under .* do not decode as images \(first: .*train/cat/c\.png, "
                                        r"OSError: image file is truncated"):
        build_classification_data(folder, None, None, "")
    cut.unlink()
    (tmp_path / "val" / "dog" / "b.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"^1 file\(s\) under .* do not decode as images \(first: .*val/dog/b\.jpg, "):
        build_classification_data(folder, None, None, "")
    # the tool, in this process: one line, exit 2, nothing trained
    spec = importlib.util.spec_from_file_location("finetune_tool", os.path.join(REPO, "tools", "finetune.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit) as stop:
        tool.main([os.path.join(REPO, "configs", "finetune", "toy.py"), "data.dataset=folder", f"data.path={tmp_path}",
                   *MICRO, "--output-dir", str(tmp_path / "run")])
    bad = tmp_path / "val" / "dog" / "b.jpg"
    assert stop.value.code == 2 and capsys.readouterr().err.strip().splitlines() == [
        f"error: 1 file(s) under {str(tmp_path)!r} do not decode as images (first: {bad}, UnidentifiedImageError: "
        f"cannot identify image file {str(bad)!r}); remove or replace them"]
    assert not any((tmp_path / "run" / name).exists() for name in ("checkpoints/last.pth", "metrics.json"))


def test_finetune_param_groups_are_the_shared_rule():
    mcfg = dict(arch="vit_micro_patch8", img_size=32, pool="avg", drop_path=0.1, head_init_std=2e-5)
    model, _ = build_classifier("finetune", mcfg, num_classes=3)
    groups = build_optimizer("finetune", model, dict(weight_decay=0.05, layer_decay=0.5, betas=(0.9, 0.999)),
                             lr=1.0).param_groups
    rule = param_groups(model, 0.05, 0.5, prefix="encoder.")
    assert [(g["lr_scale"], g["weight_decay"], len(g["params"])) for g in groups] == [
        (g["lr_scale"], g["weight_decay"], len(g["params"])) for g in rule]
    by_name = {n: (g["lr_scale"], g["weight_decay"]) for g in rule for n in g["param_names"]}
    # 2 blocks: embeddings 0.5^3, block 0 0.5^2, block 1 0.5, head and fc_norm 1; no decay on pos_embed/norms
    assert by_name["encoder.pos_embed"] == (0.125, 0.0) and by_name["encoder.patch_embed.proj.weight"][0] == 0.125
    assert by_name["encoder.blocks.0.attn.qkv.weight"] == (0.25, 0.05)
    assert by_name["encoder.blocks.1.norm1.weight"] == (0.5, 0.0)
    assert by_name["head.weight"] == (1.0, 0.05) and by_name["fc_norm.weight"] == (1.0, 0.0)
    assert not any(n.startswith("encoder.norm") for n in by_name)  # global pooling drops the final norm


@pytest.mark.parametrize("mode", ["linprobe", "finetune"])
def test_toy_run_from_checkpoint_writes_metrics_and_resumes(toy_root, tmp_path, mode):
    micro_checkpoint(tmp_path / "asl.pth")
    cfg = cfg_for(mode, toy_root, "optim.epochs=2", "optim.warmup_epochs=1", f"model.init='{tmp_path / 'asl.pth'}'",
                  "model.init_name='asl'")
    result = run_classification(cfg, str(tmp_path / "run"), mode)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["stage"] == mode and saved["init"] == {"method": "asl", "checkpoint": str(tmp_path / "asl.pth")}
    steps_per_epoch = len(classification_objects(str(toy_root), "train")) // 8  # one sample per object
    assert 0 <= saved["metrics"]["top1"] <= 100 and saved["iterations"] == 2 * steps_per_epoch == result["iterations"]
    out = run_classification(cfg, str(tmp_path / "run"), mode, resume="auto")  # finished: nothing to do
    assert out["iterations"] == 2 * steps_per_epoch and out["metrics"] == result["metrics"]
    cfg["optim"]["epochs"] = 3  # a longer schedule is another run (its cosine differs): refused, key named
    with pytest.raises(UserError, match="optim.epochs"):
        run_classification(cfg, str(tmp_path / "run"), mode, resume="auto")


def test_linprobe_cached_features_and_bad_checkpoint(toy_root, tmp_path):
    cfg = cfg_for("linprobe", toy_root, "optim.epochs=1", "data.cache_features=True")
    assert "top1" in run_classification(cfg, str(tmp_path / "run"), "linprobe")["metrics"]
    (tmp_path / "bad.pth").write_text("not a checkpoint")
    out = subprocess.run([sys.executable, os.path.join(REPO, "tools", "linprobe.py"), *MICRO,
                          "--init", str(tmp_path / "bad.pth"), "--output-dir", str(tmp_path / "r2")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and "Traceback" not in out.stderr


def test_top1_and_top5_of_known_logits():
    """Four samples over six classes: one right at rank 1, two more inside the top 5, one ranked last."""
    logits = torch.tensor([[9., 1, 2, 3, 4, 5],    # label 0: rank 1
                           [9., 1, 2, 3, 4, 5],    # label 5: rank 2
                           [9., 8, 7, 6, 5, 0],    # label 4: rank 5
                           [9., 8, 7, 6, 5, 0]])   # label 5: rank 6
    labels = torch.tensor([0, 5, 4, 5])
    session = SimpleNamespace(device=torch.device("cpu"), all_reduce=lambda values, op: values)  # one process
    loader = [(logits[:3], labels[:3]), (logits[3:], labels[3:])]  # uneven batches: counts, not batch means
    assert evaluate(lambda x: x, loader, session, 6) == {"top1": 25.0, "top5": 75.0}
    assert evaluate(lambda x: x, loader, session, 5) == {"top1": 25.0}  # top-5 of five classes says nothing
