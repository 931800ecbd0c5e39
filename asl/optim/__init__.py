"""Optimisation: the one layer-decay / weight-decay rule, schedules."""
from .layer_decay import (
                          count_layers,
                          layer_id,
                          lr_param_groups,
                          lr_scale,
                          no_weight_decay,
                          param_groups,
                          strip_wrappers,
)

__all__ = ["count_layers", "layer_id", "lr_param_groups", "lr_scale", "no_weight_decay", "param_groups",
           "strip_wrappers"]
