"""The ImageNet-100 class list is CMC's (the subset the ImageNet-100 numbers of the literature use): a changed,
reordered or truncated list would silently train and score on other classes."""
import hashlib
import re

from asl.data.classification import imagenet100_classes

# sha256 of https://github.com/HobbitLong/CMC/blob/bc687a26de7ae350d98f671d25d164b65336b8c2/imagenet100.txt
CMC_SHA256 = "79f3f1552ccc478ce24bd934b4573625db584ddc1f4643ae23c994a94cb11397"


def test_the_class_list_is_cmcs_in_its_order():
    classes = imagenet100_classes()
    assert len(classes) == len(set(classes)) == 100 and all(re.fullmatch(r"n\d{8}", c) for c in classes)
    assert classes[:2] == ["n02869837", "n01749939"] and classes[-1] == "n02090622"
    assert hashlib.sha256(("\n".join(classes) + "\n").encode()).hexdigest() == CMC_SHA256


def test_imagenet100_reads_only_the_listed_classes_of_an_imagenet_tree(tmp_path):
    """docs/usage.md: data.dataset=imagenet100 is ImageNet's class folders restricted to the list, in its order;
    a class of the list missing from the tree is one line."""
    import pytest

    from asl.cli import UserError
    from asl.data.classification import build_classification_data

    classes = imagenet100_classes()
    for split in ("train", "val"):
        for wnid in [*classes, "n99999999"]:  # every listed class, and one more that must be left out
            (tmp_path / "imagenet" / split / wnid).mkdir(parents=True)
            (tmp_path / "imagenet" / split / wnid / f"{wnid}_1.JPEG").write_bytes(b"")
    train, val, names, kind = build_classification_data(dict(dataset="imagenet100", path=None), None, None,
                                                        str(tmp_path))
    assert kind == "imagenet100" and names == classes and len(train) == len(val) == 100
    assert [label for _, label in train.samples] == list(range(100))
    assert all(f"/{classes[label]}/" in path for path, label in val.samples)
    (tmp_path / "imagenet" / "val" / classes[5] / f"{classes[5]}_1.JPEG").unlink()
    (tmp_path / "imagenet" / "val" / classes[5]).rmdir()
    with pytest.raises(UserError, match=f"1 of the 100 classes are missing under .*val.* \\(first: {classes[5]}\\)"):
        build_classification_data(dict(dataset="imagenet100", path=None), None, None, str(tmp_path))
