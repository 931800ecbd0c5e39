"""tools/gpu_check.sh on a machine where one step fails: the others still run, summary.json names the failed one,
and the summary is written from whatever the steps left (the device time of a lent GPU is not lost to one
missing framework). The steps' Python is a stand-in that records its command and fails for the loader benchmark
only; the summary runs on the real interpreter."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = ["pretrain_b64", "pretrain_b128", "pretrain_b256", "pretrain_b128_levers", "pretrain_ibot_b32", "data",
         "scenes", "detection", "segmentation"]


def test_a_failed_step_is_named_and_the_others_still_run(tmp_path):
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/bin/sh
if [ "$1" = "-" ]; then exec {sys.executable} "$@"; fi
echo "$@" >> {calls}
case "$*" in *benchmark_data.py*) echo "no GPU" >&2; exit 1;; esac
exit 0
""")
    fake.chmod(0o755)
    out = tmp_path / "out"
    result = subprocess.run(["bash", os.path.join(REPO, "tools", "gpu_check.sh")], capture_output=True, text=True,
                            env=dict(os.environ, OUT=str(out), PYTHON=str(fake)), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "[gpu_check]   FAILED" in result.stdout and "(see " + str(out / "data.log") in result.stdout
    assert sorted(p.name for p in out.glob("*.log")) == sorted(f"{s}.log" for s in STEPS)
    assert len(calls.read_text().splitlines()) == len(STEPS)  # every step ran, the failed one included
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == ["data"] and summary["data"] is None
