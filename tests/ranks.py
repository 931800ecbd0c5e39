"""Run a few ranks of a gloo group as separate Python processes (a script given as text) and read each one's
result: the JSON its last stdout line prints."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_ranks(script: str, args_per_rank: list, timeout: float = 120) -> list:
    """Start `python -c script *args` once per entry of `args_per_rank` (all at once, one thread each), wait for
    all, and return their results in that order; a failed rank fails the test with its stderr."""
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for args in args_per_rank]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results
