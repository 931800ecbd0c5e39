"""The file list of an unlabeled image folder: the cache is used when it belongs to the folder, and under
torch.distributed only rank 0 walks the folder (OpenImages: 1.7 M files); an error there reaches every rank."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from asl.data import images
from asl.data.images import list_images
from tests.ranks import run_ranks


def _folder(root, n=6):
    for i in range(n):
        sub = root / f"d{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i}.jpg").write_bytes(b"")  # listing never opens a file
    (root / "notes.txt").write_text("not an image")
    return sorted(f"d{i % 2}/{i}.jpg" for i in range(n))


def _count_walks(monkeypatch):
    calls = []
    real = os.walk
    monkeypatch.setattr(images.os, "walk", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    return calls


def test_cache_is_written_then_read_without_walking_and_ignored_for_another_folder(tmp_path, monkeypatch):
    expected = _folder(tmp_path / "imgs")
    cache = tmp_path / "cache" / "files.json"
    walks = _count_walks(monkeypatch)
    assert list_images(str(tmp_path / "imgs"), str(cache)) == expected and len(walks) == 1
    assert json.loads(cache.read_text()) == {"root": str(tmp_path / "imgs"), "files": expected}
    assert list_images(str(tmp_path / "imgs"), str(cache)) == expected and len(walks) == 1  # read, not walked
    other = _folder(tmp_path / "other", n=3)
    assert list_images(str(tmp_path / "other"), str(cache)) == other and len(walks) == 2  # a stale cache: relisted



def test_a_cache_that_cannot_be_written_is_a_warning_and_a_symlinked_root_reads_the_cache(tmp_path):
    expected = _folder(tmp_path / "imgs")
    (tmp_path / "a_file").write_text("")
    with pytest.warns(UserWarning, match="could not write the file-list cache"):
        assert list_images(str(tmp_path / "imgs"), str(tmp_path / "a_file" / "files.json")) == expected
    cache = tmp_path / "files.json"
    cache.write_text(json.dumps({"root": os.path.realpath(tmp_path / "imgs"), "files": ["cached.jpg"]}))
    (tmp_path / "link").symlink_to(tmp_path / "imgs")
    assert list_images(str(tmp_path / "link"), str(cache)) == ["cached.jpg"]  # the same folder, another spelling

# one rank: join a gloo group through a file store, count os.walk calls, list, report as JSON on stdout
WORKER = """
import json, os, sys
import torch.distributed as dist
from asl.cli import UserError
import numpy as np
from PIL import Image

from asl.data import images
rank, world_size, store, root, cache = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:]
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world_size)
walks, real = [], os.walk
images.os.walk = lambda *a, **k: walks.append(a[0]) or real(*a, **k)
try:
    result = {"files": images.list_images(root, cache)}
except UserError as err:
    result = {"error": str(err)}
result["walks"] = len(walks)
dist.destroy_process_group()
print(json.dumps(result))
"""


def _run_ranks(tmp_path, root, cache, world_size=2):
    store = tmp_path / f"store_{len(list(tmp_path.glob('store_*')))}"
    return run_ranks(WORKER, [(rank, world_size, store, root, cache) for rank in range(world_size)])


def test_only_rank_0_walks_the_folder_and_errors_reach_every_rank(tmp_path):
    expected = _folder(tmp_path / "imgs", n=8)
    cache = tmp_path / "files.json"
    first = _run_ranks(tmp_path, tmp_path / "imgs", cache)
    assert [r["files"] for r in first] == [expected, expected]
    assert [r["walks"] for r in first] == [1, 0]  # rank 1 read rank 0's cache
    assert json.loads(cache.read_text())["files"] == expected
    again = _run_ranks(tmp_path, tmp_path / "imgs", cache)
    assert [r["walks"] for r in again] == [0, 0]  # the cache of the same folder: nobody walks
    missing = _run_ranks(tmp_path, tmp_path / "absent", tmp_path / "absent.json")
    assert [r.get("error") for r in missing] == [missing[0]["error"]] * 2  # rank 1 does not wait forever
    assert "does not exist" in missing[0]["error"]


@pytest.mark.parametrize("max_pixels, error", [(10**6, None), (200, "DecompressionBombWarning"),
                                               (100, "DecompressionBombError")])
def test_decode_images_names_what_stops_each_file(tmp_path, monkeypatch, max_pixels, error):
    """The check of one's own sets: an image cut short fails although its header opens; a decompression bomb
    (warning or error: 256 pixels over a limit of 200 or 100) is an error for that file, not a crash."""
    from asl.data.images import decode_images

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", max_pixels)
    good, cut = tmp_path / "good.png", tmp_path / "cut.png"
    noise = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(noise).save(good)
    cut.write_bytes(good.read_bytes()[:300])
    (size, err_good), (_, err_cut) = decode_images([str(good), str(cut)], threads=2)
    assert err_cut is not None and err_cut.split(":")[0] == (error or "OSError")
    assert (size, err_good) == (((16, 16), None) if error is None else (None, err_good))
    assert error is None or err_good.startswith(error)


def test_decode_images_reports_progress_with_an_eta_only_when_it_takes_long(tmp_path, capsys):
    """A user's set of tens of thousands of images is no silent minute: progress lines every `progress_every_s`
    (here every image, in order, never after the last), none for a check shorter than that."""
    from asl.data.images import decode_images

    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(paths[-1])
    assert [err for _, err in decode_images(paths, threads=1, progress_every_s=0)] == [None] * 3
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0].strip() for line in lines] == ["decoded 1 / 3 images", "decoded 2 / 3 images"]
    assert all("ETA 0:00:0" in line for line in lines)
    decode_images(paths, threads=1)
    assert capsys.readouterr().out == ""
