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
