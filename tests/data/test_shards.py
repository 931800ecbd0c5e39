"""Shard sets (tools/make_shards.py, data.dataset=shards) keep the folder reader's promises: the same images in
the same order, exact resume mid-epoch, every sample once per epoch over ranks x workers, bad samples skipped and
counted, one-line errors for a missing, empty or changed set."""
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from asl.cli import UserError
from asl.config import apply_overrides, load_config
from asl.data.images import ImageFolder
from asl.data.shards import INDEX_FILE, ShardedImages, pack_shards
from asl.engine.pretrain import run_pretrain

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MICRO = ["model.arch='vit_micro_patch8'", "model.img_size=32", "model.decoder={'embed_dim': 32, 'depth': 1, "
         "'num_heads': 2}", "data.num_workers=0", "optim.batch_size=8", "runtime.tensorboard=False",
         "runtime.log_every=1", "optim.warmup_epochs=1"]


def numbered_images(root, count, size=(23, 17)):
    """`count` PNGs whose red channel is their number: a decoded sample says which image it is."""
    os.makedirs(root, exist_ok=True)
    for i in range(count):
        pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        pixels[..., 0] = i
        Image.fromarray(pixels).save(os.path.join(root, f"img{i:03d}.png"))
    return root


def number(img):
    return int(np.asarray(img)[0, 0, 0])


def pretrain_cfg(dataset, path, *overrides):
    cfg = load_config(os.path.join(REPO, "configs", "pretrain", "toy_asl.py"))
    return apply_overrides(cfg, MICRO + [f"data.dataset={dataset}", f"data.path={path}", *overrides])


def weights(run_dir):
    return torch.load(os.path.join(run_dir, "checkpoints", "last.pth"), weights_only=True)["model"]


def test_packing_keeps_every_image_in_order_in_webdataset_layout_and_a_rerun_keeps_complete_shards(tmp_path):
    src = numbered_images(tmp_path / "src", 23)
    index = pack_shards(str(src), str(tmp_path / "shards"), per_shard=5, log=lambda m: None)
    assert [len(s["members"]) for s in index["shards"]] == [5, 5, 5, 5, 3]
    with tarfile.open(tmp_path / "shards" / "shard-000001.tar") as tar:
        assert tar.getnames() == [f"{k:09d}.png" for k in range(5, 10)]  # WebDataset's <key>.<ext>
        assert tar.extractfile("000000007.png").read() == (src / "img007.png").read_bytes()
    shards, folder = ShardedImages(str(tmp_path / "shards")), ImageFolder(str(src))
    assert len(shards) == len(folder) == 23
    assert [number(shards[i]) for i in range(23)] == [number(folder[i]) for i in range(23)] == list(range(23))
    before = os.stat(tmp_path / "shards" / "shard-000002.tar").st_mtime_ns
    os.remove(tmp_path / "shards" / "shard-000003.tar")  # as if the first run died there
    lines = []
    again = pack_shards(str(src), str(tmp_path / "shards"), per_shard=5, log=lines.append)
    assert again == index and "(4 kept from a previous run)" in lines[-1]
    assert os.stat(tmp_path / "shards" / "shard-000002.tar").st_mtime_ns == before

    # --shuffle-seed: every image once, in a random order that the seed repeats
    shuffled = [pack_shards(str(src), str(tmp_path / f"shuffled{k}"), per_shard=5, shuffle_seed=3, log=lambda m: None)
                for k in (0, 1)]
    order = [number(ShardedImages(str(tmp_path / "shuffled0"))[i]) for i in range(23)]
    assert shuffled[0] == shuffled[1] and sorted(order) == list(range(23)) and order != list(range(23))


def test_a_shard_run_equals_the_folder_run_and_resumes_mid_epoch_exactly(toy_root, tmp_path):
    """24 toy scenes, batch 8: 3 steps an epoch; the shard run stops at steps 2 and 4 (mid-epoch) and resumes."""
    pack_shards(str(toy_root / "unlabeled"), str(tmp_path / "shards"), per_shard=7, log=lambda m: None)
    ref = run_pretrain(pretrain_cfg("folder", toy_root / "unlabeled", "optim.epochs=2"), str(tmp_path / "folder"))
    run_dir = str(tmp_path / "pieces")
    for piece, stop in enumerate((2, 4, None)):
        cfg = pretrain_cfg("shards", tmp_path / "shards", "optim.epochs=2", f"runtime.max_iters={stop}")
        out = run_pretrain(cfg, run_dir, resume="auto" if piece else None)
    assert out["iterations"] == ref["iterations"] == 6
    assert out["metrics"]["loss"] == ref["metrics"]["loss"]
    ref_weights, shard_weights = weights(tmp_path / "folder"), weights(run_dir)
    assert all(torch.equal(ref_weights[k], shard_weights[k]) for k in ref_weights)


def test_bad_members_are_skipped_and_counted(tmp_path):
    src = numbered_images(tmp_path / "src", 16, size=(40, 40))
    index = pack_shards(str(src), str(tmp_path / "shards"), per_shard=6, log=lambda m: None)
    offset, length = index["shards"][1]["members"][2]  # sample 8: its bytes overwritten in place
    with open(tmp_path / "shards" / "shard-000001.tar", "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * length)
    shards = ShardedImages(str(tmp_path / "shards"))
    with pytest.warns(UserWarning, match=r"skipping unreadable image 'shard-000001.tar' member 2"):
        assert shards[8] is None
    cfg = pretrain_cfg("shards", tmp_path / "shards", "optim.epochs=2", "optim.warmup_epochs=0")
    metrics = run_pretrain(cfg, str(tmp_path / "run"))
    assert metrics["iterations"] == 4 and metrics["metrics"]["skipped_files"] == 2  # once an epoch


def test_a_missing_empty_or_changed_shard_set_is_a_one_line_error(tmp_path):
    src = numbered_images(tmp_path / "src", 4)
    pack_shards(str(src), str(tmp_path / "shards"), per_shard=2, log=lambda m: None)
    tool = os.path.join(REPO, "tools", "pretrain.py")

    def error(path):
        out = subprocess.run([sys.executable, tool, *MICRO, "data.dataset=shards", f"data.path={path}",
                              "--output-dir", str(tmp_path / "run")], capture_output=True, text=True)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
        return out.stderr

    assert "no shard index" in error(src)
    with open(tmp_path / "shards" / "shard-000001.tar", "ab") as f:
        f.write(b"x")
    assert "has 10241 bytes, the index says 10240" in error(tmp_path / "shards")
    os.remove(tmp_path / "shards" / "shard-000001.tar")
    assert "shard-000001.tar" in error(tmp_path / "shards") and "is missing" in error(tmp_path / "shards")
    index = json.loads((tmp_path / "shards" / INDEX_FILE).read_text())
    (tmp_path / "shards" / INDEX_FILE).write_text(json.dumps(dict(index, shards=[])))
    assert "holds no images" in error(tmp_path / "shards")
    with pytest.raises(UserError, match="needs data.path"):
        run_pretrain(pretrain_cfg("shards", "''"), str(tmp_path / "run2"))


SPLIT_SCRIPT = """
import json, sys
import numpy as np
import torch.distributed as dist
from asl.data.images import ResumableSampler, SeededSamples, collate_skip_bad
from asl.data.shards import ShardedImages
from asl.engine.runtime import epoch_loader

def red(img):
    return int(np.asarray(img.convert("RGB"))[0, 0, 0])

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
data = SeededSamples(ShardedImages(sys.argv[1], decode=red), seed=0)
sampler = ResumableSampler(len(data), seed=0, rank=rank, world_size=world)
seen = {}
for epoch, start in ((0, 0), (1, 0), (1, 5)):
    sampler.set_epoch(epoch, start)
    data.epoch = epoch
    loader = epoch_loader(data, sampler, 5, 2, 0, epoch, collate_skip_bad)
    seen[f"{epoch},{start}"] = [n for batch, _ in loader for n in batch.tolist()]
json.dump(seen, open(f"{sys.argv[2]}/rank{rank}.json", "w"))
dist.destroy_process_group()
"""


@pytest.mark.slow  # a torchrun launch (make test-slow, which .ci/run runs)
def test_every_sample_once_per_epoch_over_two_processes_with_two_workers_each(tmp_path):
    pack_shards(str(numbered_images(tmp_path / "src", 30)), str(tmp_path / "shards"), per_shard=7,
                log=lambda m: None)
    script = tmp_path / "split.py"
    script.write_text(SPLIT_SCRIPT)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          "29541", str(script), str(tmp_path / "shards"), str(tmp_path)],
                         capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO))
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in ("0,0", "1,0"):
        assert sorted(ranks[0][epoch] + ranks[1][epoch]) == list(range(30)), epoch  # none twice, none skipped
        assert len(ranks[0][epoch]) == len(ranks[1][epoch]) == 15
    assert ranks[0]["0,0"] != ranks[0]["1,0"]  # a new order each epoch
    for seen in ranks:  # resumed after one batch: the rest of the epoch, in the same order
        assert seen["1,5"] == seen["1,0"][5:]
