"""Frozen-feature probes (kNN, linear, dense linear): the measures are pure PyTorch (asl.probe); this folder
holds what the chain needs to know of them."""
