"""Every command the README, every docs/*.md and the tools' own help show parses with the tool
it names (config files it names exist): a renamed option or a moved config breaks this test, not a user's first try."""
import importlib.util
import os
import re
import shlex

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHELL_VARS = {"$i": "0", "$W": "/tmp/w", "$SLURM_JOB_ID": "1"}


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parser_of(tool):
    """argv -> parsed arguments, for a tool of tools/ (every tool owns its command line)."""
    return load_tool(tool).parse_args


def commands(text):
    """(tool, argv) of every line of `text` that runs a tool, backslash continuations joined; the launchers in
    front (torchrun, srun, sbatch scripts, tools/pretrain.sh) are skipped."""
    text = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in text.splitlines():
        line = re.sub(r"\s#\s.*$", "", line.strip().lstrip("#").strip())
        match = re.search(r"(?:^|\s)(tools/(?!slurm/)[\w]+\.(?:py|sh))(?:\s|$)(.*)", line)
        starts_a_command = re.match(r"(\(.*?\)\s*)?([A-Z_]+=\S+\s+)*(python|torchrun|srun|sbatch|tools/)", line)
        if not match or not starts_a_command or "..." in line:
            continue
        for var, value in SHELL_VARS.items():
            line = line.replace(var, value)
        tool = os.path.splitext(os.path.basename(match.group(1)))[0]
        rest = re.search(r"(?:^|\s)tools/(?!slurm/)[\w]+\.(?:py|sh)(?:\s|$)(.*)", line).group(1)
        found.append(("pretrain" if tool == "pretrain" else tool, shlex.split(rest)))
    return found


def sources():
    docs = sorted(f"docs/{name}" for name in os.listdir(os.path.join(REPO, "docs")) if name.endswith(".md"))
    texts = {path: open(os.path.join(REPO, path)).read() for path in ("README.md", *docs)}
    for name in sorted(os.listdir(os.path.join(REPO, "tools"))):
        if name.endswith(".py"):
            texts[f"tools/{name}"] = load_tool(name[:-3]).__doc__ or ""
    texts["tools/train_seg.py --help"] = load_tool("train_seg").build_parser().epilog
    return [(path, tool, argv) for path, text in texts.items() for tool, argv in commands(text)]


ALL = sources()


def test_the_sources_hold_commands_of_every_training_tool():
    tools = {tool for _, tool, _ in ALL}
    assert {"pretrain", "linprobe", "finetune", "train_det", "train_seg", "convert_ckpt", "run_pipeline"} <= tools
    assert len(ALL) > 40


@pytest.mark.parametrize("source, tool, argv", ALL, ids=[f"{s}:{t}:{' '.join(a)[:50]}" for s, t, a in ALL])
def test_documented_command_parses(source, tool, argv):
    args = parser_of(tool)(argv)
    for key in ("config", "config_file"):
        config = getattr(args, key, None)
        if isinstance(config, str) and config.startswith("configs/"):
            assert os.path.isfile(os.path.join(REPO, config)), f"{source}: {config} does not exist"
    if tool == "train_det":
        assert os.path.isfile(args.config_file if os.path.isabs(args.config_file)
                              else os.path.join(REPO, args.config_file))
