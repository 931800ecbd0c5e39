"""tools/install.sh (what `make test` and `make demo` run first): it returns at once when the venv's stamp
matches the install script and setup.py, and a failing step stops it with a line naming that step, and no other
step is called failed. The venv is a stand-in whose python imports asl and whose pip fails to install torch only."""
import hashlib
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _install(venv, cache):
    return subprocess.run(["bash", os.path.join(REPO, "tools", "install.sh")], capture_output=True, text=True,
                          env=dict(os.environ, ASL_VENV=str(venv), ASL_WHEEL_CACHE=str(cache)), timeout=120)


def test_a_matching_stamp_returns_at_once_and_a_failing_step_is_named(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text('#!/bin/sh\n[ "$1" = "-c" ] && [ "$2" = "import asl" ] && exit 0\n'
                      'case "$*" in *torch==*) echo "pip: no network" >&2; exit 3;; esac\nexit 0\n')
    python.chmod(0o755)
    digest = hashlib.sha256()
    for name in ("tools/install.sh", "setup.py"):
        with open(os.path.join(REPO, name), "rb") as f:
            digest.update(f.read())
    (venv / ".asl-install-stamp").write_text(digest.hexdigest()[:16] + "\n")
    done = _install(venv, tmp_path / "wheels")
    assert done.returncode == 0 and done.stdout.startswith("[install] up to date")
    (venv / ".asl-install-stamp").write_text("an older install\n")
    failed = _install(venv, tmp_path / "wheels")
    assert failed.returncode != 0 and "[install] virtual environment" in failed.stdout
    assert [line for line in failed.stderr.splitlines() if "FAILED" in line] == [
        "[install] FAILED at step: torch 2.14.1 + torchvision 0.29.1 (see the output above; rerun 'make install' "
        "after fixing)"]  # the step that failed, and only it


def test_a_rerun_after_a_failure_finishes_from_the_wheel_cache_without_building(tmp_path):
    """docs/install.md: rerunning after a failed step finishes the install, and the cached wheels (the re-packed
    detectron2, mmcv with ops) are installed as they are: nothing is downloaded, unpacked or built again."""
    venv, cache = tmp_path / "venv", tmp_path / "wheels"
    (venv / "bin").mkdir(parents=True)
    cache.mkdir()
    d2_wheel = cache / "detectron2-0.7.2-py3-none-any.whl"
    mmcv_wheel = cache / "mmcv-2.1.0-cp311-cp311-linux_x86_64.whl"
    d2_wheel.write_text("cached")
    mmcv_wheel.write_text("cached")
    calls, broken = tmp_path / "calls.log", tmp_path / "network_down"
    python = venv / "bin" / "python"
    imports_broken = tmp_path / "imports_broken"
    python.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n'
                      f'case "$*" in *torch==*) [ -e {broken} ] && {{ echo "pip: no network" >&2; exit 3; }};; esac\n'
                      f'case "$*" in *"import torch, torchvision"*) [ -e {imports_broken} ] && exit 1;; esac\n'
                      'exit 0\n')
    python.chmod(0o755)
    broken.touch()
    failed = _install(venv, cache)
    assert failed.returncode != 0 and "FAILED at step: torch" in failed.stderr
    assert not (venv / ".asl-install-stamp").exists()
    broken.unlink()
    calls.write_text("")
    finished = _install(venv, cache)
    assert finished.returncode == 0 and "[install] complete in" in finished.stdout, finished.stderr
    steps = [line for line in finished.stdout.splitlines() if line.startswith("[install] ") and line.endswith("...")]
    assert len(steps) == 8 and finished.stdout.count("[install]   done in ") == 8  # every step timed
    pip_calls = [line for line in calls.read_text().splitlines() if line.startswith("-m pip")]
    assert any(line.endswith(f"--no-deps --force-reinstall {d2_wheel}") for line in pip_calls)
    assert any(line.endswith(f"--no-deps {mmcv_wheel}") for line in pip_calls)
    assert not [line for line in calls.read_text().splitlines() if "download" in line or line.startswith("-m wheel")
                or " wheel --no-deps" in line]  # no download, no re-pack, no mmcv build
    assert _install(venv, cache).stdout.startswith("[install] up to date")  # the stamp was written

    # an install whose import check fails is failed, named, and leaves no stamp (the next make tries again)
    (venv / ".asl-install-stamp").unlink()
    imports_broken.touch()
    broken_imports = _install(venv, cache)
    assert broken_imports.returncode != 0 and "FAILED at step: import check" in broken_imports.stderr
    assert not (venv / ".asl-install-stamp").exists()
    imports_broken.unlink()

    # a deleted cached wheel is built again (docs/install.md): mmcv's source is fetched, here with no network
    mmcv_wheel.unlink()
    calls.write_text("")
    rebuilt = _install(venv, cache)
    assert "-m pip download --quiet --no-deps --no-build-isolation --no-binary :all: mmcv==2.1.0" in calls.read_text()
    assert rebuilt.returncode != 0 and "FAILED at step: mmcv 2.1.0 with compiled ops" in rebuilt.stderr


def test_clean_venv_removes_the_environment_and_keeps_the_wheel_cache(tmp_path):
    """docs/install.md: `make clean-venv` removes .venv/; the wheel cache survives it (the next install reuses it)."""
    import shutil

    shutil.copy(os.path.join(REPO, "Makefile"), tmp_path / "Makefile")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    cache = tmp_path / "home" / ".cache" / "asl-toolkit" / "wheels"
    cache.mkdir(parents=True)
    (cache / "mmcv-2.1.0-cp311-cp311-linux_x86_64.whl").write_text("built once")
    subprocess.run(["make", "clean-venv"], cwd=tmp_path, check=True, capture_output=True,
                   env=dict(os.environ, HOME=str(tmp_path / "home")))
    assert not (tmp_path / ".venv").exists() and (cache / "mmcv-2.1.0-cp311-cp311-linux_x86_64.whl").exists()
