"""Images packed into tar shards (WebDataset's layout: each image one `<key>.<ext>` member of a plain tar file)
with an index, `index.json`, that tools/make_shards.py writes next to them: the shards' names and sizes and, per
sample, the byte offset and length of its member. The reader needs only the index: no folder listing, no file
opened per sample (each process keeps its shards open and reads a member with one positional read), and any
sample is reached directly, so the folder reader's sampler, exact resume and per-rank split apply unchanged.
"""
import io
import json
import os
import tarfile
import time

import numpy as np

from ..cli import UserError
from .images import ImageFiles, list_images

INDEX_FILE = "index.json"
INDEX_FORMAT = "asl-shards/1"
MAX_OPEN_SHARDS = 256  # per process, well under the usual 1024 descriptors


def read_index(root: str) -> dict:
    """The shard set's index, checked against the shards it names (one stat per shard); a one-line UserError for
    a missing, empty or inconsistent set."""
    path = os.path.join(root, INDEX_FILE)
    if not os.path.isfile(path):
        raise UserError(f"no shard index {path!r}: data.dataset=shards reads a folder written by "
                        "tools/make_shards.py (or use data.dataset=folder for a folder of images)")
    try:
        with open(path) as f:
            index = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"shard index {path!r} cannot be read: {err}") from None
    if index.get("format") != INDEX_FORMAT:
        raise UserError(f"{path!r} is not a shard index of this toolkit (format {index.get('format')!r}, "
                        f"expected {INDEX_FORMAT!r}); rewrite the shards with tools/make_shards.py")
    if not sum(len(s["members"]) for s in index["shards"]):
        raise UserError(f"shard set {root!r} holds no images")
    for shard in index["shards"]:
        file = os.path.join(root, shard["name"])
        if not os.path.isfile(file):
            raise UserError(f"shard {file!r} named in {path!r} is missing")
        if os.path.getsize(file) != shard["bytes"]:
            raise UserError(f"shard {file!r} has {os.path.getsize(file)} bytes, the index says {shard['bytes']}: "
                            "it changed after packing; rewrite the shards with tools/make_shards.py")
    return index


class ShardedImages(ImageFiles):
    """The images of a shard set, in index order; `decode` and bad-image handling as ImageFiles."""

    def __init__(self, root: str, decode=None, max_pixels: int = None):
        self._open = {}  # (process id, shard number) -> file descriptor
        super().__init__(decode, max_pixels)
        index = read_index(root)
        self.root, self.names = root, [s["name"] for s in index["shards"]]
        # per sample: shard number, member offset, member length (int64, shared by forked workers)
        self.members = np.array([(n, offset, length) for n, s in enumerate(index["shards"])
                                 for offset, length in s["members"]], dtype=np.int64)

    def __len__(self):
        return len(self.members)

    def _fd(self, shard: int) -> int:
        key = (os.getpid(), shard)  # a forked worker opens its own descriptors
        if key not in self._open:
            if len(self._open) >= MAX_OPEN_SHARDS:  # close the longest-open one
                os.close(self._open.pop(next(iter(self._open))))
            self._open[key] = os.open(os.path.join(self.root, self.names[shard]), os.O_RDONLY)
        return self._open[key]

    def open_file(self, index):
        shard, offset, length = (int(v) for v in self.members[index])
        data = os.pread(self._fd(shard), length, offset)  # positional: no shared file offset between processes
        if len(data) != length:
            raise OSError(f"short read ({len(data)} of {length} bytes)")
        return io.BytesIO(data)

    def describe(self, index) -> str:
        shard = int(self.members[index][0])
        member = index - int(np.searchsorted(self.members[:, 0], shard))
        return f"{self.names[shard]!r} member {member}"

    def __del__(self):
        for (pid, _), fd in self._open.items():
            if pid == os.getpid():
                os.close(fd)


def member_offsets(tar_path: str) -> list:
    """[(member name, data offset, data length)] of a tar file, read from its headers."""
    with tarfile.open(tar_path, "r:") as tar:
        return [(m.name, m.offset_data, m.size) for m in tar.getmembers() if m.isfile()]


def _write_shard(path: str, root: str, files: list, first_key: int):
    """One shard, written under a temporary name and renamed when complete (a crash never leaves a partial
    shard under its final name)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, rel in enumerate(files, first_key):
            with open(os.path.join(root, rel), "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(member_name(key, rel))
            info.size, info.mode = len(data), 0o444
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)


def member_name(key: int, rel: str) -> str:
    """WebDataset's `<key>.<ext>`: the key is the sample number, the extension the file's, lower case."""
    return f"{key:09d}{os.path.splitext(rel)[1].lower()}"


def pack_shards(src: str, dst: str, per_shard: int = 10_000, shuffle_seed: int = None, files: list = None,
                log=print) -> dict:
    """Pack the images under `src` (`files`, relative paths; default list_images: sorted, or shuffled with
    `shuffle_seed`) into tar shards of `per_shard` images under `dst`, then write index.json (last, so a set
    without one is incomplete). A rerun keeps the shards that are already complete and hold the expected members.
    Returns the index."""
    if per_shard < 1:
        raise UserError(f"--per-shard must be at least 1, got {per_shard}")
    files = list_images(src) if files is None else files
    if shuffle_seed is not None:
        files = [files[i] for i in np.random.default_rng(shuffle_seed).permutation(len(files))]
    os.makedirs(dst, exist_ok=True)
    count = (len(files) + per_shard - 1) // per_shard
    shards, start, reused = [], time.time(), 0
    for n in range(count):
        name, part = f"shard-{n:06d}.tar", files[n * per_shard:(n + 1) * per_shard]
        path = os.path.join(dst, name)
        expected = [member_name(k, rel) for k, rel in enumerate(part, n * per_shard)]
        members = member_offsets(path) if os.path.exists(path) else None
        if members is not None and [m[0] for m in members] == expected:
            reused += 1
        else:
            _write_shard(path, src, part, n * per_shard)
            members = member_offsets(path)
        shards.append(dict(name=name, bytes=os.path.getsize(path), files=part,
                           members=[[offset, length] for _, offset, length in members]))
        done, elapsed = n * per_shard + len(part), time.time() - start
        rate = done / max(elapsed, 1e-9)
        log(f"[make_shards] shard {n + 1}/{count}: {done}/{len(files)} images, {rate:.0f} img/s, "
            f"eta {int((len(files) - done) / max(rate, 1e-9))} s" + (f" ({reused} kept from a previous run)"
                                                                     if reused else ""))
    index = dict(format=INDEX_FORMAT, source=os.path.abspath(src), images=len(files), shards=shards)
    tmp = os.path.join(dst, f"{INDEX_FILE}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(index, f)
    os.replace(tmp, os.path.join(dst, INDEX_FILE))
    return index
