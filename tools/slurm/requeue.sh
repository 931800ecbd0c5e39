#!/usr/bin/env bash
# The body of the sbatch examples: run one task per GPU with srun (each task finds its rank, the group's size and
# the master node in SLURM's variables: no torchrun), and requeue the job when the tool stopped for a signal.
#   tools/slurm/requeue.sh TOOL [ARGS...]     (called by single_node.sbatch / multi_node.sbatch)
# A tool that receives SIGUSR1 (sent by `#SBATCH --signal`) or SIGTERM (preemption, scancel) saves a checkpoint
# at its next step and exits with status 75; this script then puts the job back in the queue, and the requeued
# job continues from that checkpoint (the command carries --resume).
set -uo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
# the batch shell outlives the signal and waits for the tasks to finish their checkpoint
trap 'echo "[slurm] stop signal received; the tasks checkpoint at their next step"' TERM USR1
srun --kill-on-bad-exit=1 "$PY" "$@" &
step=$!
wait "$step"; rc=$?
while kill -0 "$step" 2>/dev/null; do wait "$step"; rc=$?; done  # a trapped signal interrupts `wait`
wait "$step"; rc=$?  # the step's own status, also when it ended between the trap and the check above
if [ "$rc" -eq 75 ]; then
  echo "[slurm] the run stopped at a checkpoint (status 75): requeueing job ${SLURM_JOB_ID}"
  scontrol requeue "${SLURM_JOB_ID}"
fi
exit "$rc"
