"""With several processes a stop signal may reach one of them only (a `kill` of one rank, a node's signal before
the others'): every process must stop at the same step, the first multiple of runtime.stop_check_every at or
after the signal, or one would wait forever in the next all-reduce."""
from tests.ranks import run_ranks

# one rank: join a gloo group, see the signal (rank 1 only, from step 4 on), report the steps that said "stop"
WORKER = """
import json, sys, types
import torch, torch.distributed as dist
from asl.engine.runtime import Session
rank, store, every = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
session = types.SimpleNamespace(world_size=2, stop_check_every=every, device=torch.device("cpu"),
                                signals=types.SimpleNamespace(received=None))
stops = []
for step in range(1, 11):
    if rank == 1 and step == 4:
        session.signals.received = "SIGUSR1"
    if Session.stop_requested(session, step):
        stops.append(step)
dist.destroy_process_group()
print(json.dumps(stops))
"""


def _stops(tmp_path, every):
    return run_ranks(WORKER, [(rank, tmp_path / f"store{every}", every) for rank in (0, 1)])


def test_every_process_stops_at_the_same_checked_step(tmp_path):
    assert _stops(tmp_path, 3) == [[6, 9], [6, 9]]  # signal at step 4: steps 4 and 5 are not checked
    assert _stops(tmp_path, 1) == [list(range(4, 11))] * 2
