"""Optimisation: the one layer-decay / weight-decay rule, schedules."""
from .layer_decay import count_layers, layer_id, lr_scale, no_weight_decay, param_groups

__all__ = ["count_layers", "layer_id", "lr_scale", "no_weight_decay", "param_groups"]
