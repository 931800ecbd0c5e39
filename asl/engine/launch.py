"""The launch contract of every tool: one process, torchrun's variables, or SLURM's, detected without flags.

A process started by torchrun sees RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; a task started by
`srun` sees SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID / SLURM_NODELIST. Either way the process joins one group;
a process that is one of several but cannot join refuses with one line instead of training alone.
"""
import datetime
import os
import re
from dataclasses import dataclass

import torch

from ..cli import UserError

DEFAULT_PORT = 29500
JOIN_TIMEOUT_S = 600  # ASL_DIST_TIMEOUT overrides: how long a process waits for the others of its group


@dataclass(frozen=True)
class Launch:
    source: str  # "single" | "torchrun" | "slurm"
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_PORT


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: "gpu[03-05,07],cpu1" -> "gpu03"."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise UserError(f"cannot read the SLURM node list {nodelist!r}; set MASTER_ADDR")
    prefix, ranges = match.groups()
    return prefix + (ranges.split(",")[0].split("-")[0] if ranges else "")


def _int(env, name, default=None):
    value = env.get(name, default)
    try:
        return int(str(value).split("(")[0])  # SLURM writes "2(x4)" for 2 tasks on each of 4 nodes
    except (TypeError, ValueError):
        raise UserError(f"environment variable {name}={value!r} is not an integer") from None


def detect_launch(env=None) -> Launch:
    """The launch this process belongs to. torchrun's variables win over SLURM's (torchrun inside an allocation);
    a SLURM job step of one task, or a batch script outside `srun`, is a single process."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        world = _int(env, "WORLD_SIZE")
        return Launch("torchrun" if world > 1 else "single", _int(env, "RANK"), world, _int(env, "LOCAL_RANK", 0),
                      _int(env, "LOCAL_WORLD_SIZE", world), env.get("MASTER_ADDR", "127.0.0.1"),
                      _int(env, "MASTER_PORT", DEFAULT_PORT))
    in_step = "SLURM_STEP_ID" in env or "SLURM_STEP_NUM_TASKS" in env  # inside srun, not the batch script
    if "SLURM_PROCID" in env and in_step:
        world = _int(env, "SLURM_STEP_NUM_TASKS", env.get("SLURM_NTASKS", 1))
        if world > 1:
            nodes = _int(env, "SLURM_STEP_NUM_NODES", env.get("SLURM_NNODES", 1))
            per_node = _int(env, "SLURM_STEP_TASKS_PER_NODE", env.get("SLURM_NTASKS_PER_NODE", world // nodes))
            addr = env.get("MASTER_ADDR") or first_host(env.get("SLURM_STEP_NODELIST") or env["SLURM_NODELIST"])
            # one port per job, so that two jobs sharing a node do not meet
            port = _int(env, "MASTER_PORT", 20000 + _int(env, "SLURM_JOB_ID", 0) % 20000)
            return Launch("slurm", _int(env, "SLURM_PROCID"), world, _int(env, "SLURM_LOCALID", 0), per_node,
                          addr, port)
    return Launch("single")


def export_torchrun_env(launch: Launch, env=None):
    """Write the launch as torchrun's variables, which mmengine's and torch's env:// initialisation read."""
    env = os.environ if env is None else env
    env.update(RANK=str(launch.rank), WORLD_SIZE=str(launch.world_size), LOCAL_RANK=str(launch.local_rank),
               LOCAL_WORLD_SIZE=str(launch.local_world_size), MASTER_ADDR=launch.master_addr,
               MASTER_PORT=str(launch.master_port))


def device_for(launch: Launch) -> torch.device:
    """cuda:<local rank> (cuda:0 when the launcher gave each task one visible GPU), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    count = torch.cuda.device_count()
    index = 0 if count == 1 else launch.local_rank
    if index >= count:
        raise UserError(f"process {launch.rank} has local rank {launch.local_rank} but sees {count} GPUs; start "
                        "at most one process per GPU on each node")
    return torch.device("cuda", index)


def join_group(launch: Launch, device: torch.device):
    """Initialise torch.distributed for a multi-process launch (NCCL on GPUs, gloo on CPUs); refuse with one line
    when the group cannot be formed within ASL_DIST_TIMEOUT seconds."""
    import torch.distributed as dist

    if device.type == "cuda":  # before NCCL: each process on its own GPU
        torch.cuda.set_device(device)
    if launch.world_size == 1 or dist.is_initialized():
        return
    timeout = float(os.environ.get("ASL_DIST_TIMEOUT", JOIN_TIMEOUT_S))
    try:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if launch.source == "torchrun":  # torchrun's agent hosts the store and started every process
            dist.init_process_group(backend, init_method="env://", timeout=datetime.timedelta(minutes=30))
        else:  # our store waits for every task (the join timeout); collectives keep torch's 30-minute default
            store = dist.TCPStore(launch.master_addr, launch.master_port, launch.world_size, launch.rank == 0,
                                  timeout=datetime.timedelta(seconds=timeout), wait_for_workers=True)
            dist.init_process_group(backend, store=store, rank=launch.rank, world_size=launch.world_size,
                                    timeout=datetime.timedelta(minutes=30))
    except (RuntimeError, ValueError, OSError) as err:
        raise UserError(
            f"process {launch.rank} of {launch.world_size} ({launch.source}) could not join its group at "
            f"{launch.master_addr}:{launch.master_port} within {timeout:.0f} s ({str(err).splitlines()[0][:120]}); "
            "start all processes together (srun / torchrun) or run one process without the launcher's "
            "variables") from None
