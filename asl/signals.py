"""Stop signals and the exit status of a preempted run: what the training loops, the transfer tools and the
chain (which starts them and requeues on that status) share. Standard library only, so the chain does not import
torch to know them."""
import multiprocessing
import os
import signal

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again"; tools/slurm/*.sbatch requeue on it
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """Remembers the first SIGTERM / SIGUSR1 (what SLURM sends before a time limit or a preemption) instead of
    dying; the loop saves at its next step boundary. close() restores the previous handlers."""

    def __init__(self, forward_to_children: bool = False):
        """forward_to_children: a launcher that waits for worker processes it spawned passes the signal on to
        them (SLURM signals the whole job step, but a `kill PID` reaches only the launcher)."""
        self.received, self.forward = None, forward_to_children
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}

    def _on_signal(self, signum, _frame):
        self.received = self.received or signal.Signals(signum).name
        for child in multiprocessing.active_children() if self.forward else ():
            try:
                os.kill(child.pid, signum)
            except ProcessLookupError:  # it has just exited
                pass

    def close(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Preempted(Exception):
    """A stop signal arrived; the run saved a checkpoint at the step boundary and can continue with --resume.
    Every tool's main_guard turns it into its message and EXIT_PREEMPTED (requeue me)."""

    def __init__(self, signame: str, step: int, path: str, resume_flag: str = "--resume auto"):
        super().__init__(f"{signame} received: saved iteration {step} to {path}; continue with {resume_flag}")
