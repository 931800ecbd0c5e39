import pytest
import torch

from asl.optim.schedule import lr_at, set_lr


def test_lr_schedule_warmup_then_half_cosine():
    assert lr_at(0, 1.0, 10, 110) == 0 and lr_at(5, 1.0, 10, 110) == 0.5
    assert lr_at(10, 1.0, 10, 110) == 1.0 and lr_at(60, 1.0, 10, 110) == pytest.approx(0.5)
    assert lr_at(110, 1.0, 10, 110, min_lr=0.1) == pytest.approx(0.1)
    assert lr_at(500, 1.0, 10, 110, min_lr=0.1) == pytest.approx(0.1)  # flat after the schedule ends


def test_set_lr_applies_layer_scales():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr_scale": 0.25}, {"params": [torch.nn.Parameter(torch.zeros(1))]}],
                          lr=0.0)
    set_lr(opt, 2.0)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 2.0]
