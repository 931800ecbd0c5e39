"""Datasets, transforms and the toy-scene generator."""
