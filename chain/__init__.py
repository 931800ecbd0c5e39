"""Orchestration above the core and the adapters: the pipeline, sweeps, the results table and the task
declarations they work from. Runs the tools as subprocesses and imports no framework."""
