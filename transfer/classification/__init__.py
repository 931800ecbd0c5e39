"""Image classification transfer (linear probing, fine-tuning): the loops are pure PyTorch and live in
asl.engine.classification; this folder holds what the chain needs to know of them."""
