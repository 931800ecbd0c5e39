"""The experiment configs carry the paper's values (its appendix): linear probing, fine-tuning (Table 2's drop path
0.1, which we keep for ViT-L too), the Table 3 / Table 5 / OpenImages pretraining configs, and the pipeline configs that
chain them; every config of configs/{pretrain,linprobe,finetune,pipeline} loads, and every pretraining transform
builds. (Detection and segmentation: tests/transfer/*/test_*_configs.py.)"""
import glob
import os

import pytest

from asl.cli import UserError
from asl.config import load_config
from asl.data.transforms import pretrain_transform
from asl.engine.runtime import accumulation, flatten
from chain.pipeline import Pipeline
from chain.sweep import twin_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")
TABLE5 = {"mae": "vitb_in1k_mae_200ep.py", **{f"mae+{a}": f"vitb_in1k_mae_200ep_{a}.py"
                                             for a in ("colorjitter", "grayscale", "gaussianblur", "solarize")}}


def cfg(*parts):
    return load_config(os.path.join(CONFIGS, *parts))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "pretrain", "*.py"))),
                         ids=os.path.basename)
def test_every_pretraining_config_loads_and_its_transform_builds(path):
    c = load_config(path)
    assert c["model"]["method"] in ("asl", "mae") and c["optim"]["epochs"] > 0
    assert c["runtime"]["keep_every_epochs"] == 100  # docs/cluster.md: an epoch file kept every 100 epochs
    pretrain_transform(c["data"]["transform"], c["model"]["img_size"])


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "linprobe", "*.py")) +
                                        glob.glob(os.path.join(CONFIGS, "finetune", "*.py"))),
                         ids=lambda p: os.path.relpath(p, CONFIGS))
def test_every_classification_config_loads(path):
    c = load_config(path)
    assert c["model"]["arch"] and c["data"]["dataset"] in ("toy", "imagenet100", "folder", "cifar10", "cifar100")


def test_linear_probing_is_the_papers_table_1():
    o = cfg("linprobe", "in100_vitb.py")["optim"]
    assert (o["blr"], o["weight_decay"], o["momentum"], o["epochs"], o["warmup_epochs"]) == (0.1, 0.0, 0.9, 90, 10)
    assert accumulation(o, 8) == (4, 16384) and o["blr"] * 16384 / 256 == pytest.approx(6.4)  # the paper's lr 6.4
    assert cfg("linprobe", "in100_vitb_ablation.py")["optim"]["epochs"] == 200  # the paper's ablation schedule
    in1k = cfg("linprobe", "in1k_vitb.py")
    assert in1k["data"]["dataset"] == "folder" and in1k["data"]["path"] is None  # all of $ASL_DATASETS/imagenet
    assert in1k["optim"] == o and in1k["model"]["arch"] == "vit_base_patch16"
    for name in ("cifar10_vits.py", "cifar100_vits.py"):  # MAE's protocol at 32 px
        c = cfg("linprobe", name)
        assert c["optim"] == o and (c["model"]["arch"], c["model"]["img_size"]) == ("vit_small_patch4", 32)


@pytest.mark.parametrize("name", ["in100_vitb.py", "in100_vitl.py", "cifar10_vits.py", "cifar100_vits.py"])
def test_fine_tuning_is_the_papers_table_2_with_its_drop_path_01_kept_for_every_model(name):
    c = cfg("finetune", name)
    o, a = c["optim"], c["aug"]
    assert c["model"]["drop_path"] == 0.1
    assert (o["blr"], o["weight_decay"], tuple(o["betas"]), o["layer_decay"]) == (1e-3, 0.05, (0.9, 0.999), 0.75)
    assert (o["epochs"], o["warmup_epochs"]) == (100, 5)
    assert (a["rand_aug"], a["smoothing"], a["mixup"], a["cutmix"]) == ("rand-m9-mstd0.5-inc1", 0.1, 0.8, 1.0)
    assert accumulation(o, 8) == (4, 1024)


def test_vitl_fine_tuning_is_the_vitb_recipe_on_the_large_encoder():
    vitb, vitl = cfg("finetune", "in100_vitb.py"), cfg("finetune", "in100_vitl.py")
    assert vitl["model"]["arch"] == "vit_large_patch16"
    assert {**vitl, "model": {**vitl["model"], "arch": "vit_base_patch16"}} == vitb


def _large_scale(optim, world_size=8):
    """The paper's large-scale pretraining recipe: batch 4096, blr 1.5e-4, AdamW (0.9, 0.95), wd 0.05, 40 warmup."""
    assert accumulation(optim, world_size)[1] == 4096
    assert (optim["blr"], tuple(optim["betas"]), optim["weight_decay"], optim["warmup_epochs"]) == (
        1.5e-4, (0.9, 0.95), 0.05, 40)


def test_table3_mae_1600_epochs_on_imagenet_1k():
    c = cfg("pretrain", "vitb_in1k_mae_1600ep.py")
    assert (c["model"]["method"], c["model"]["loss"], c["model"]["arch"]) == ("mae", "mse", "vit_base_patch16")
    assert c["optim"]["epochs"] == 1600 and c["data"]["path"] == "{datasets}/imagenet/train"
    assert c["data"]["file_list_cache"] and c["data"]["transform"] == "mae"
    _large_scale(c["optim"])
    global_batch = accumulation(c["optim"], 8)[1]
    assert 1_281_167 // global_batch * c["optim"]["epochs"] == 499_200  # the paper's ~499k iterations
    assert {**c, "optim": {**c["optim"], "epochs": 800}} == cfg("pretrain", "vitb_in1k_mae_800ep.py")


def test_table5_rows_are_the_200_epoch_mae_baseline_plus_one_global_augmentation():
    base = cfg("pretrain", TABLE5["mae"])
    assert (base["model"]["method"], base["model"]["loss"], base["optim"]["epochs"]) == ("mae", "mse", 200)
    assert base["data"]["path"] == "{datasets}/imagenet/train" and base["data"]["transform"] == "mae"
    _large_scale(base["optim"])
    for transform, name in TABLE5.items():
        row = cfg("pretrain", name)
        assert row["data"]["transform"] == transform
        assert {**row, "data": {**row["data"], "transform": "mae"}} == base  # nothing else differs
        names = [type(t).__name__ for t in pretrain_transform(transform, 224).transforms]
        assert len(names) == 4 + (transform != "mae")  # crop, flip, to-tensor, [augmentation], normalise


def _twins():
    """(ASL config, its MAE twin) of every pretraining config that has one (the sweep's --baseline mae rule)."""
    pairs = []
    for path in sorted(glob.glob(os.path.join(CONFIGS, "pretrain", "*asl*.py"))):
        try:
            pairs.append((path, twin_config(path)))
        except UserError:  # no twin (the GPU variant of the toy)
            pass
    assert len(pairs) == 9  # an empty list would pass silently
    return pairs


@pytest.mark.parametrize("asl_config, mae_config", _twins(), ids=lambda p: os.path.basename(p))
def test_every_mae_twin_changes_only_the_method_and_the_loss(asl_config, mae_config):
    """docs/experiments.md: the *_mae_* twins change only the method and the loss (equal budgets, data, decoder)."""
    asl, mae = flatten(load_config(asl_config)), flatten(load_config(mae_config))
    assert sorted(k for k in set(asl) | set(mae) if asl.get(k) != mae.get(k)) == ["model.loss", "model.method"]
    assert (asl["model.method"], mae["model.method"], mae["model.loss"]) == ("asl", "mae", "mse")


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "probe", "*.py"))), ids=os.path.basename)
def test_every_probe_config_loads(path):
    c = load_config(path)
    assert c["model"]["arch"] and set(c["probe"]) >= {"objects", "dense", "classification"}


def test_openimages_configs_are_the_800_epoch_asl_and_mae_twins_with_a_file_list_cache():
    asl, mae = cfg("pretrain", "vitb_openimages_asl_800ep.py"), cfg("pretrain", "vitb_openimages_mae_800ep.py")
    assert (asl["model"]["method"], asl["model"]["loss"]) == ("asl", "contrastive")
    assert (mae["model"]["method"], mae["model"]["loss"]) == ("mae", "mse")
    assert {**mae, "model": asl["model"]} == asl
    assert asl["optim"]["epochs"] == 800 and asl["data"]["path"] == "{datasets}/openimages/train"
    assert asl["data"]["file_list_cache"] == "{datasets}/openimages/train_files.json"
    _large_scale(asl["optim"])


def _commands(name, tmp_path, stages=("pretrain", "detection", "segmentation", "linprobe", "finetune")):
    """The tool command lines a pipeline config runs, stage by stage (nothing is run)."""
    pipe = Pipeline(cfg("pipeline", name), str(tmp_path))
    return [(step.name, step.cmd) for stage in stages if stage == "pretrain" or pipe.cfg.get(stage)
            for step in (pipe.steps_pretrain() if stage == "pretrain" else pipe.steps_transfer(pipe.tasks[stage]))]


def _config_of(cmd):
    return os.path.relpath(next(a for a in cmd if a.startswith(CONFIGS)), CONFIGS)


def test_table5_pipeline_pretrains_the_five_rows_and_probes_each_on_imagenet_1k(tmp_path):
    calls = _commands("vitb_table5_global_aug.py", tmp_path)
    pretrain = {what: cmd for what, cmd in calls if what.startswith("pretrain")}
    assert {what: _config_of(cmd) for what, cmd in pretrain.items()} == {
        f"pretrain {t}": f"pretrain/{n}" for t, n in TABLE5.items()}
    assert all("--nproc_per_node=8" in cmd for cmd in pretrain.values())  # accumulated to 4096 (global_batch)
    probes = [(what, cmd) for what, cmd in calls if what.startswith("linprobe")]
    assert [w for w, _ in probes] == [f"linprobe {t}" for t in TABLE5]  # the table's row order
    assert all(_config_of(cmd) == "linprobe/in1k_vitb.py" for _, cmd in probes)
    assert {what.split()[0] for what, _ in calls} == {"pretrain", "linprobe"}  # linear probing only


def test_openimages_pipeline_chains_pretraining_to_lp_detection_and_segmentation(tmp_path):
    calls = dict(_commands("vitb_openimages.py", tmp_path))
    assert set(calls) == {f"{stage} {m}" for stage in ("pretrain", "detection", "segmentation", "linprobe")
                          for m in ("asl", "mae")}
    assert _config_of(calls["pretrain asl"]) == "pretrain/vitb_openimages_asl_800ep.py"
    assert _config_of(calls["pretrain mae"]) == "pretrain/vitb_openimages_mae_800ep.py"
    assert _config_of(calls["detection asl"]) == "coco_vitb.py"
    assert _config_of(calls["segmentation mae"]) == "ade20k_vitb_upernet.py"
    assert _config_of(calls["linprobe asl"]) == "linprobe/in100_vitb.py"
    assert str(tmp_path / "converted" / "asl_detectron2.pth") in calls["detection asl"]


def test_table3_pipeline_compares_mae_in1k_800_1600_with_asl_in100coco_4000(tmp_path):
    calls = dict(_commands("vitb_table3.py", tmp_path))
    assert {w: _config_of(c) for w, c in calls.items() if w.startswith("pretrain")} == {
        "pretrain mae_in1k_800ep": "pretrain/vitb_in1k_mae_800ep.py",
        "pretrain mae_in1k_1600ep": "pretrain/vitb_in1k_mae_1600ep.py",
        "pretrain asl_in100coco_4000ep": "pretrain/vitb_in100coco_asl_4000ep.py"}
    assert {_config_of(c) for w, c in calls.items() if not w.startswith("pretrain")} == {
        "linprobe/in100_vitb.py", "finetune/in100_vitb.py"}


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "pipeline", "*.py"))), ids=os.path.basename)
def test_every_pipeline_config_names_configs_that_exist(path):
    c = load_config(path)
    for method in [m for m in c["inits"] if m != "random"]:
        assert os.path.isfile(c["pretrain"]["configs"][method]), method
    for stage in ("detection", "segmentation", "linprobe", "finetune"):
        if c.get(stage):
            assert os.path.isfile(c[stage]["config"]), stage


def test_one_key_check_walks_mappings_and_lists_and_asks_what_a_node_builds():
    """asl.config.check_key, behind our overrides and the adapters' (detectron2's `_target_`, mmengine's `type`)."""
    from asl.config import check_key

    cfg = {"model": {"arch": "vit", "blocks": [{"dim": 1}], "head": {"type": "Linear", "bias": True}}}
    check_key(cfg, "model.blocks.0.dim")
    takes = lambda node: {"in_features", "out_features"} if node.get("type") == "Linear" else set()  # noqa: E731
    check_key(cfg, "model.head.out_features", takes)  # not in the config, but an argument of what it builds
    check_key(cfg, "model.head.anything", lambda node: None)  # None: it takes any argument
    for key, arguments_of, message in [
        ("model.blocks.1.dim", None, "unknown config key 'model.blocks.1.dim': model.blocks has no '1'"),
        ("model.arc", None, "model has no 'arc' (did you mean 'arch'?) (it has arch, blocks, head)"),
        ("modl.arch", None, "the config has no 'modl' (did you mean 'model'?)"),
        ("model.head.out_feature", takes, "model.head has no 'out_feature' (did you mean 'out_features'?) (it has "
                                          "bias, in_features, out_features)"),
        ("model.head.bias.x", takes, "model.head.bias has no 'x'"),
    ]:
        with pytest.raises(UserError) as err:
            check_key(cfg, key, arguments_of)
        assert message in str(err.value) and "\n" not in str(err.value)


def test_bases_merge_in_order_the_child_wins_and_delete_replaces(tmp_path):
    """_base_ files merge left to right, the config's own cfg last; nested dicts merge key by key unless the
    override says _delete_=True (then it replaces the section)."""
    (tmp_path / "a.py").write_text(
        "cfg = dict(model=dict(arch='a', depth=2, extra=dict(x=1, y=2)), optim=dict(lr=1))\n")
    (tmp_path / "b.py").write_text("cfg = dict(model=dict(arch='b'), optim=dict(epochs=5))\n")
    (tmp_path / "child.py").write_text(
        "_base_ = ['a.py', 'b.py']\ncfg = dict(model=dict(depth=4, extra=dict(_delete_=True, z=3)))\n")
    assert load_config(str(tmp_path / "child.py")) == {
        "model": {"arch": "b", "depth": 4, "extra": {"z": 3}}, "optim": {"lr": 1, "epochs": 5}}


def test_data_root_reaches_the_processes_a_tool_starts(tmp_path, monkeypatch):
    from asl.cli import config_tool_parser, config_tool_run

    monkeypatch.delenv("ASL_DATASETS", raising=False)
    parser = config_tool_parser("", "pretrain", os.path.join(REPO, "configs", "pretrain", "toy_asl.py"))
    args = parser.parse_intermixed_args(["optim.epochs=2", "--data-root", str(tmp_path / "data")])
    cfg, run_dir = config_tool_run(args, "pretrain", os.path.join(REPO, "configs", "pretrain", "toy_asl.py"))
    assert os.environ["ASL_DATASETS"] == str(tmp_path / "data")  # inherited by every subprocess
    assert cfg["optim"]["epochs"] == 2 and run_dir == os.path.join("work_dirs", "pretrain", "toy_asl")


def test_the_toy_transfers_depart_from_the_protocols_as_documented():
    """docs/usage.md: toy linear probing reads the mean patch token; toy fine-tuning trains without RandAug, mixup
    and cutmix (the ImageNet fine-tuning config keeps all three)."""
    from asl.engine.classification import build_criterion, train_transform

    assert cfg("linprobe", "toy.py")["model"]["pool"] == "avg" and cfg("linprobe", "base.py")["model"]["pool"] == "cls"
    toy, full = cfg("finetune", "toy.py"), cfg("finetune", "in100_vitb.py")
    names = lambda c: [type(t).__name__ for t in train_transform("finetune", c).transforms]  # noqa: E731
    assert "RandAugment" not in names(toy) and "RandAugment" in names(full)
    assert build_criterion("finetune", toy["aug"], 4)[0] is None and build_criterion("finetune", full["aug"], 100)[0]
