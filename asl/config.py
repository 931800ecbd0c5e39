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


def apply_overrides(cfg: dict, overrides) -> dict:
    """Apply `a.b.c=value` overrides; the key must exist (catches typos), values are Python literals or strings."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not of the form key=value (e.g. optim.epochs=10)")
        key, value = item.split("=", 1)
        node, parts = cfg, key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                sections = [k for k, v in node.items() if isinstance(v, dict)]
                raise UserError(f"unknown config key {key!r}: no section {part!r}{did_you_mean(part, sections)}")
            node = node[part]
        if parts[-1] not in node:
            raise UserError(f"unknown config key {key!r}{did_you_mean(parts[-1], node)}; known keys here: "
                            f"{', '.join(sorted(node))}")
        node[parts[-1]] = _parse_value(value)
    return cfg


def save_config(cfg: dict, path: str):
    from .records import write_json

    write_json(path, json.loads(json.dumps(cfg, default=str)))
