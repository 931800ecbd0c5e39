"""tools/benchmark_pretrain.py's iBOT reference: it builds, trains a step like iBOT (student and head learn, the
teacher only follows by EMA), and the tool times it beside MAE and reports the ratio."""
import importlib.util
import json
import os
import subprocess
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "benchmark_pretrain.py")


def load_tool():
    spec = importlib.util.spec_from_file_location("tool_benchmark_pretrain", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ibot_reference_runs_a_step_and_the_teacher_follows_by_ema():
    tool = load_tool()
    torch.manual_seed(0)
    model = tool.IBOTReference("vit_micro_patch8", img_size=32, local_crops=3, out_dim=64, momentum=0.9)
    global_crops, local_crops = model.inputs(2, "cpu")
    assert global_crops.shape == (4, 3, 32, 32) and local_crops.shape == (6, 3, 16, 16)  # 96/224 of 32, patch 8
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = model(global_crops, local_crops)["loss"]
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    student = dict(model.student.named_parameters())
    for name in ("backbone.mask_token", "backbone.pos_embed", "backbone.blocks.1.mlp.fc2.weight", "head.mlp.0.weight",
                 "head.last.parametrizations.weight.original1"):
        assert student[name].grad is not None and student[name].grad.abs().sum() > 0, name
    assert model.center.abs().sum() > 0  # centring moved
    optimizer.step()
    model.after_step()
    after = model.teacher.state_dict()
    for name, param in model.student.state_dict().items():
        assert torch.allclose(after[name], 0.9 * teacher[name] + 0.1 * param, atol=1e-6), name
    assert not torch.equal(after["backbone.mask_token"], teacher["backbone.mask_token"])


def test_the_tool_times_ibot_beside_mae_and_reports_the_ratio(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, TOOL, "--arch", "vit_micro_patch8", "--img-size", "32", "--batch", "2", "--steps", "1",
           "--warmup", "1", "--rounds", "1", "--cpu", "--modes", "mae,ibot", "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    ibot, mae = result["modes"]["ibot"], result["modes"]["mae"]
    assert result["ratios"]["ibot/mae"] == ibot["step_s"] / mae["step_s"]
    assert result["cpu_time_ratios"]["ibot/mae"] == ibot["cpu_step_s"] / mae["cpu_step_s"]
    assert 0 < ibot["fvcore_untrained_gflops_per_img"] < ibot["fvcore_gflops_per_img"]  # the teacher's share
    assert mae["fvcore_untrained_gflops_per_img"] == 0
    assert "ibot/mae" in run.stdout and "faster ASL decoding" not in run.stdout
