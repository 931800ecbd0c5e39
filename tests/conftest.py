import pytest

from asl.data.toy import write_toy_scenes


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory):
    """A small toy-scene dataset shared by the tests of a session (24 unlabeled, 24 train, 16 val, 128 px)."""
    root = tmp_path_factory.mktemp("toy_scenes")
    write_toy_scenes(str(root), num_unlabeled=24, num_train=24, num_val=16, size=128, seed=0)
    return root
