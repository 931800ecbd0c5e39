"""CIFAR-10/100 from the standard python-pickle files under a local root (no download)."""
import os
import pickle

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ..cli import UserError

LAYOUTS = {"cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
           "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels")}


class _ArraysOnly(pickle.Unpickler):
    """The official CIFAR files are pickles of numpy arrays and lists: allow only what they need."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise UserError(f"refusing to unpickle {module}.{name} from a CIFAR file: not an official CIFAR batch")
        return super().find_class(module, name)


class CIFAR(Dataset):
    """Returns (transformed image, label)."""

    def __init__(self, root: str, name: str = "cifar10", train: bool = True, transform=None):
        folder, train_files, test_files, label_key = LAYOUTS[name]
        base = os.path.join(root, folder)
        if not os.path.isdir(base):
            raise UserError(f"{name} not found: expected the python-pickle folder {base!r} (no download here)")
        images, labels = [], []
        for fname in train_files if train else test_files:
            with open(os.path.join(base, fname), "rb") as f:
                batch = _ArraysOnly(f, encoding="bytes").load()
            images.append(batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.extend(batch[label_key])
        self.images, self.labels, self.transform = np.concatenate(images), labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        img = Image.fromarray(self.images[index])
        return (self.transform(img) if self.transform else img), self.labels[index]
