"""No import-time patching: importing the toolkit's modules (and the tools, and the segmentation configs with their
custom_imports) leaves timm, detectron2 and mmengine as they are; each fix is installed by an explicit, idempotent
call that the tool's run makes. Each check runs in a fresh interpreter, where nothing has installed anything yet."""
import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_fresh(code: str):
    """Run `code` in a new interpreter at the repository root; fail with its output if it fails."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr


def test_timm_posterize_ops_are_patched_only_by_install_posterize_fix():
    run_fresh("""
        from timm.data import auto_augment
        original = dict(auto_augment.NAME_TO_OP)
        import tools.finetune, tools.linprobe, tools.probe  # noqa: F401
        from asl.engine import classification
        assert auto_augment.NAME_TO_OP == original, "timm's NAME_TO_OP changed on import"
        classification.install_posterize_fix()
        classification.install_posterize_fix()
        posterize = ("Posterize", "PosterizeIncreasing", "PosterizeOriginal")
        assert all(auto_augment.NAME_TO_OP[k] is classification._posterize for k in posterize)
        assert {k: v for k, v in auto_augment.NAME_TO_OP.items() if k not in posterize} == \\
            {k: v for k, v in original.items() if k not in posterize}
    """)


def test_detectron2_worker_init_is_patched_only_by_install_worker_init():
    run_fresh("""
        import signal
        import detectron2.data.build as d2_build
        original = d2_build.worker_init_reset_seed
        import tools.train_det  # noqa: F401  (imports transfer.detection.data and .engine)
        from transfer.detection import data
        assert d2_build.worker_init_reset_seed is original, "detectron2's worker_init_reset_seed changed on import"
        data.install_worker_init()
        patched = d2_build.worker_init_reset_seed
        data.install_worker_init()
        assert patched is not original and d2_build.worker_init_reset_seed is patched  # wrapped once
        patched(0)
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
    """)


def test_mmengine_checkpoint_loader_is_patched_only_by_install_safe_loader():
    run_fresh("""
        from mmengine.config import Config
        from mmengine.runner.checkpoint import CheckpointLoader
        original = dict(CheckpointLoader._schemes)
        import tools.train_seg  # noqa: F401
        import transfer.segmentation.engine  # noqa: F401
        Config.fromfile("configs/segmentation/upernet_toy_1xb8_toyscenes.py")  # runs the config's custom_imports
        assert dict(CheckpointLoader._schemes) == original, "mmengine's checkpoint loaders changed on import"
        from transfer.segmentation.checkpoint import install_safe_loader, safe_torch_load
        install_safe_loader()
        install_safe_loader()
        assert CheckpointLoader._schemes[""] is safe_torch_load
        assert {k: v for k, v in CheckpointLoader._schemes.items() if k} == {k: v for k, v in original.items() if k}
    """)


def test_formatted_once_config_is_a_new_object_not_a_class_swap():
    from mmengine.config import Config

    from transfer.segmentation.engine import FormattedOnceConfig

    cfg = Config(dict(a=1, b=dict(c=[2, 3])))
    formatted = FormattedOnceConfig.from_config(cfg)
    assert type(cfg) is Config and type(formatted) is FormattedOnceConfig
    assert formatted.b.c == [2, 3] and formatted.pretty_text == cfg.pretty_text
