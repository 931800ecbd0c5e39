"""docs/cluster.md's table of the keys that may change on --resume is the list each tool enforces: a key the docs
allow and the tool refuses (or the reverse) would break a requeued job or let a changed run continue unnoticed."""
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def documented() -> dict:
    with open(os.path.join(REPO, "docs", "cluster.md")) as f:
        rows = [line.strip() for line in f if line.strip().startswith("| ") and "may change on resume" not in line]
    return {row.split("|")[1].strip(): set(re.findall(r"`([^`]+)`", row.split("|")[2])) for row in rows
            if "`" in row.split("|")[2]}


@pytest.mark.parametrize("tool, module", [
    ("pretraining, linear probing, fine-tuning", "asl.engine.runtime"),
    ("detection", "transfer.detection.engine"),
    ("segmentation", "transfer.segmentation.engine"),
])
def test_the_documented_resumable_keys_are_the_enforced_ones(tool, module):
    enforced = set(__import__(module, fromlist=["RESUMABLE_KEYS"]).RESUMABLE_KEYS)
    assert documented()[tool] == enforced



def test_every_documented_key_of_our_tools_can_be_set():
    """A key the docs tell users they may change exists in the config of at least one of the three tools the row
    names (some are pretraining's alone, e.g. runtime.keep_every_epochs): an unknown key is refused on the command
    line."""
    from asl.cli import UserError
    from asl.config import apply_overrides, load_config

    configs = [load_config(os.path.join(REPO, "configs", tool, "base.py"))
               for tool in ("pretrain", "linprobe", "finetune")]

    def settable(cfg, key):
        try:
            apply_overrides(cfg, [f"{key}=None"])
            return True
        except UserError:
            return False

    missing = [key for key in sorted(documented()["pretraining, linear probing, fine-tuning"])
               if not any(settable(cfg, key) for cfg in configs)]
    assert missing == []
    for cfg in configs:  # the key the docs tell every launch of several processes about, in each of the three tools
        assert settable(cfg, "runtime.stop_check_every")
