"""Experiment configs are data: a Python file defining `cfg = dict(...)`, optionally on top of `_base_` files
(paths relative to the file; later ones win), like mmengine's configs and detectron2's ViTDet configs that
import a base and change it. Overrides are dotted `key=value` pairs from the command line."""
import ast
import copy
import json
import os
import runpy

from .cli import UserError, did_you_mean


def merge(base: dict, update: dict) -> dict:
    """Recursive dict merge; `update` wins. A dict value with `_delete_=True` replaces instead of merging."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not value.get("_delete_", False):
            out[key] = merge(out[key], value)
        else:
            out[key] = {k: v for k, v in value.items() if k != "_delete_"} if isinstance(value, dict) else value
    return out


def load_config(path: str) -> dict:
    if not os.path.isfile(path):
        raise UserError(f"config file {path!r} does not exist")
    ns = runpy.run_path(path)
    if not isinstance(ns.get("cfg"), dict):
        raise UserError(f"config {path!r} does not define `cfg = dict(...)`")
    bases = ns.get("_base_", [])
    cfg = {}
    for base in [bases] if isinstance(bases, str) else bases:
        cfg = merge(cfg, load_config(os.path.join(os.path.dirname(os.path.abspath(path)), base)))
    return merge(cfg, ns["cfg"])


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare string such as a path


def check_key(cfg, key: str, arguments_of=None):
    """A one-line UserError unless the dotted `key` names an entry of `cfg` (mappings by name, lists by index) or,
    as its last part, an argument of the callable its node builds: `arguments_of(node)` gives their names (None:
    it takes any). The one key check behind every tool's overrides: ours, detectron2's LazyConfig (`_target_`) and
    mmengine's Config (`type`), whose own merges would silently add a misspelt key."""
    node, parts = cfg, key.split(".")
    for i, part in enumerate(parts):
        mapping = hasattr(node, "keys")
        if not mapping and isinstance(node, (list, tuple)) or type(node).__name__ == "ListConfig":
            if part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
        elif mapping and part in node:
            node = node[part]
            continue
        accepted = arguments_of(node) if mapping and arguments_of else set()
        if i == len(parts) - 1 and (accepted is None or part in accepted):
            return
        keys = {k for k in node.keys() if k not in ("_target_", "type")} if mapping else set()
        names = sorted(keys | (accepted or set()))
        where = ".".join(parts[:i]) or "the config"
        raise UserError(f"unknown config key {key!r}: {where} has no {part!r}{did_you_mean(part, names)}"
                        + (f" (it has {', '.join(names)})" if names else ""))


def apply_overrides(cfg: dict, overrides) -> dict:
    """Apply `a.b.c=value` overrides; the key must exist (catches typos), values are Python literals or strings."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not of the form key=value (e.g. optim.epochs=10)")
        key, value = item.split("=", 1)
        check_key(cfg, key)
        *path, last = key.split(".")
        node = cfg
        for part in path:
            node = node[part]
        node[last] = _parse_value(value)
    return cfg


def save_config(cfg: dict, path: str):
    from .records import write_json

    write_json(path, json.loads(json.dumps(cfg, default=str)))
