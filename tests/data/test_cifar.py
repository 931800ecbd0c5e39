"""The CIFAR reader on files written in the official python-pickle layout (a few known images): the pixels come
back in HWC order at the right index with their label, train and test read their own files, CIFAR-100 its fine
labels, and a file that is not a plain CIFAR batch or a missing folder is a one-line refusal."""
import os
import pickle

import numpy as np
import pytest

from asl.cli import UserError
from asl.data.cifar import CIFAR


def write_batch(path, first_label, n, label_key=b"labels"):
    """n images whose pixel (y, x) of channel c is (first_label + i + 50 c + 2 y + x) % 256, labels first_label + i."""
    i, c, y, x = np.ogrid[:n, :3, :32, :32]
    data = ((first_label + i + 50 * c + 2 * y + x) % 256).astype(np.uint8).reshape(n, 3 * 32 * 32)
    with open(path, "wb") as f:
        pickle.dump({b"data": data, label_key: [first_label + k for k in range(n)]}, f)


def test_cifar10_pixels_labels_and_splits(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for b in range(1, 6):
        write_batch(base / f"data_batch_{b}", 10 * b, 2)
    write_batch(base / "test_batch", 100, 3)
    train, test = CIFAR(str(tmp_path), "cifar10", True), CIFAR(str(tmp_path), "cifar10", False)
    assert len(train) == 10 and len(test) == 3
    assert [train[k][1] for k in range(10)] == [10, 11, 20, 21, 30, 31, 40, 41, 50, 51]
    image, label = train[3]  # batch 2, second image: base value 21
    pixels = np.asarray(image)
    assert label == 21 and pixels.shape == (32, 32, 3)
    assert pixels[0, 0].tolist() == [21, 71, 121] and pixels[5, 7].tolist() == [38, 88, 138]  # (y, x) = (5, 7)
    assert test[2][1] == 102


def test_cifar100_reads_fine_labels(tmp_path):
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    write_batch(base / "train", 7, 4, label_key=b"fine_labels")
    write_batch(base / "test", 90, 1, label_key=b"fine_labels")
    assert [CIFAR(str(tmp_path), "cifar100", True)[k][1] for k in range(4)] == [7, 8, 9, 10]


def test_refusals(tmp_path):
    with pytest.raises(UserError, match="no download here"):
        CIFAR(str(tmp_path), "cifar10")
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    with open(base / "train", "wb") as f:
        pickle.dump({b"data": os.system}, f)  # a pickle that would call a function: not a CIFAR batch
    with pytest.raises(UserError, match="refusing to unpickle"):
        CIFAR(str(tmp_path), "cifar100")


def test_cifar_pretraining_keeps_the_pil_path(tmp_path):
    """docs/benchmarks.md: the CIFAR crop keeps the PIL path (32 px decode costs nothing): samples are the
    normalised float crops of pretrain_transform, never DecodeCropFlip's uint8."""
    import torch

    from asl.data.images import Transformed
    from asl.engine.pretrain import build_dataset

    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for b in range(1, 6):
        write_batch(base / f"data_batch_{b}", 10 * b, 2)
    data, name = build_dataset(dict(dataset="cifar10", path=str(tmp_path), transform="cifar"), 32)
    assert name == "cifar10" and isinstance(data.dataset, Transformed) and len(data) == 10
    assert data[0].dtype == torch.float32 and data[0].shape == (3, 32, 32)
