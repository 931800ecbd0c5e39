"""Unlabeled images from any folder tree (no class folders), for pretraining on arbitrary scenes.

Bad files (truncated, empty, not an image, decompression bombs) are skipped with a warning, never fatal: the
dataset returns None for them and `collate_skip_bad` drops them and counts them, so the loop can log the count.
"""
import json
import os
import random
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate

from ..cli import UserError
from ..engine.logger import format_seconds

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def list_images(root: str, cache_file: str = None) -> list:
    """Sorted relative paths of all images under `root`. With `cache_file`, the list is read from it when it
    exists for the same root (delete it after changing the folder) and written there otherwise. Under
    torch.distributed with a cache file, only rank 0 walks the folder (OpenImages: 1.7 M files) and writes the
    cache; the other ranks wait for it and read it."""
    dist = torch.distributed
    if cache_file and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return _list_images_on_rank0(root, cache_file)
    return _list_images(root, cache_file)


def _read_cache(root: str, cache_file: str):
    """The cached list of `root`, or None (no cache, or a cache of another folder)."""
    if not os.path.exists(cache_file):
        return None
    with open(cache_file) as f:
        cached = json.load(f)
    return cached["files"] if cached.get("root") in (os.path.abspath(root), os.path.realpath(root)) else None


def _list_images(root: str, cache_file: str = None) -> list:
    if not os.path.isdir(root):
        raise UserError(f"image folder {root!r} does not exist (give --data-path, or omit it to use the toy scenes)")
    cached = cache_file and _read_cache(root, cache_file)
    if cached:
        return cached
    files = sorted(os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root, followlinks=True)
                   for n in names if n.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {root!r}")
    if cache_file:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(cache_file)), exist_ok=True)
            tmp = f"{cache_file}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump({"root": os.path.abspath(root), "files": files}, f)
            os.replace(tmp, cache_file)
        except OSError as err:  # a read-only dataset mount: the list is still good, only not kept
            warnings.warn(f"could not write the file-list cache {cache_file!r} ({err}); the next run lists the "
                          "folder again (set data.file_list_cache to a writable path)", stacklevel=2)
    return files


def _list_images_on_rank0(root: str, cache_file: str) -> list:
    """Rank 0 lists (or reads the cache) and writes the cache; its error, if any, reaches every rank (none waits
    forever); the others read the cache, or list themselves where it is not on a filesystem they share."""
    dist = torch.distributed
    result = [None]
    if dist.get_rank() == 0:
        try:
            files = _list_images(root, cache_file)
        except Exception as err:  # any error reaches every rank, so none waits in the broadcast
            result = [str(err) if isinstance(err, UserError) else f"listing {root!r} failed on rank 0: {err!r}"]
        else:
            result = [f"ok {len(files)}"]
    dist.broadcast_object_list(result, src=0)
    if not result[0].startswith("ok "):
        raise UserError(result[0])
    if dist.get_rank() == 0:
        return files
    files = _read_cache(root, cache_file)
    if files is None or len(files) != int(result[0].split()[1]):
        warnings.warn(f"rank {dist.get_rank()} cannot read the file list rank 0 wrote to {cache_file!r} (not a "
                      "shared filesystem?); listing the folder on this rank too", stacklevel=3)
        files = _list_images(root, cache_file=None)
    return files


def _decode(path: str):
    try:
        with Image.open(path) as img:
            img.load()
            return img.size, None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return None, f"{type(err).__name__}: {err}"


def decode_images(paths, threads: int = None, progress_every_s: float = 10.0) -> list:
    """[(size (w, h) or None, error or None)] of each path, every image decoded in full: a header alone is read
    by a file cut short too, which would then stop training in the middle of an epoch. The checks of a user's
    own sets (classification folders, COCO-format sets, label-map folders) run this before training; PIL's
    decoders release the GIL, so the threads decode in parallel. A check longer than `progress_every_s` prints
    a progress line with its ETA that often (tens of thousands of images take minutes)."""
    paths = list(paths)
    threads = threads or min(8, os.cpu_count() or 1)
    results, start = [], time.time()
    last = start
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with ThreadPoolExecutor(threads) as pool:
            for done, result in enumerate(pool.map(_decode, paths, chunksize=64), 1):
                results.append(result)
                now = time.time()
                if now - last >= progress_every_s and done < len(paths):
                    last, rate = now, done / max(now - start, 1e-9)
                    print(f"  decoded {done:,} / {len(paths):,} images ({format_seconds(now - start)}, ETA "
                          f"{format_seconds((len(paths) - done) / rate)})", flush=True)
    return results


def rgb(img: Image.Image) -> Image.Image:
    """The default decode: the whole image, as RGB."""
    return img.convert("RGB")


class ImageFiles(Dataset):
    """Images read through `open_file(index)` and decoded by `decode` (an opened, not yet decoded PIL image ->
    sample; default: the RGB image). An unreadable image (truncated, empty, not an image, decompression bomb) is
    None, with a warning naming it."""

    def __init__(self, decode=None, max_pixels: int = None):
        self.decode = decode or rgb
        self.max_pixels = max_pixels or Image.MAX_IMAGE_PIXELS

    def open_file(self, index):
        raise NotImplementedError

    def describe(self, index) -> str:
        raise NotImplementedError

    def load(self, index):
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(self.open_file(index)) as img:
                if img.width * img.height > self.max_pixels:
                    raise Image.DecompressionBombError(f"{img.width}x{img.height} exceeds {self.max_pixels} pixels")
                return self.decode(img)

    def __getitem__(self, index):
        try:
            img = self.load(index)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            warnings.warn(f"skipping unreadable image {self.describe(index)}: {type(err).__name__}: {err}",
                          stacklevel=2)
            return None
        return img


class ImageFolder(ImageFiles):
    """The images of a folder tree (list_images), one file each."""

    def __init__(self, root: str, cache_file: str = None, max_pixels: int = None, decode=None):
        super().__init__(decode, max_pixels)
        self.root = root
        self.files = list_images(root, cache_file)

    def __len__(self):
        return len(self.files)

    def open_file(self, index):
        return os.path.join(self.root, self.files[index])

    def describe(self, index) -> str:
        return repr(self.files[index])


@contextmanager
def seeded(seed: int):
    """torch's (CPU), Python's and NumPy's global RNGs seeded with `seed` inside the block and restored after it,
    except in a loader worker, whose RNGs serve only its samples (saving and restoring NumPy's state costs more
    than a fast decode's crop)."""
    restore = torch.utils.data.get_worker_info() is None
    if restore:
        states = torch.get_rng_state(), random.getstate(), np.random.get_state()
    torch.default_generator.manual_seed(seed)  # torch.manual_seed would also seed every accelerator: slower
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    try:
        yield
    finally:
        if restore:
            torch.set_rng_state(states[0])
            random.setstate(states[1])
            np.random.set_state(states[2])


class SeededSamples(Dataset):
    """Loads sample `index` of `epoch` with the RNGs seeded from (seed, epoch, index), so its augmentation is the
    same whichever worker loads it and whether or not the run was resumed mid-epoch; the main process's RNGs
    (masking, dropout, mixup) are left untouched. Set `epoch` before each epoch's loader."""

    def __init__(self, dataset, seed: int = 0):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        with seeded((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index):
            return self.dataset[index]


class Transformed(Dataset):
    """`transform` applied to each sample's image (`pick` selects it from a tuple sample, e.g. CIFAR's); None
    (an unreadable file) passes through."""

    def __init__(self, dataset, transform, pick: int = None):
        self.dataset, self.transform, self.pick = dataset, transform, pick

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        sample = self.dataset[index]
        img = sample if self.pick is None or sample is None else sample[self.pick]
        return None if img is None else self.transform(img)


def collate_skip_bad(batch):
    """Collate the readable samples; returns (batch or None, number of skipped files)."""
    good = [b for b in batch if b is not None]
    return (default_collate(good) if good else None), len(batch) - len(good)


class ResumableSampler(torch.utils.data.Sampler):
    """Epoch-seeded random order, sharded over ranks like DistributedSampler (drop_last), that can start in the
    middle of an epoch: after a resume the remaining samples of that epoch come in the same order."""

    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.per_rank = size // world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0):
        self.epoch, self.start = epoch, start

    def __len__(self):
        return self.per_rank - self.start

    def __iter__(self):
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch))
        mine = order[: self.per_rank * self.world_size][self.rank::self.world_size]
        return iter(mine[self.start:].tolist())
