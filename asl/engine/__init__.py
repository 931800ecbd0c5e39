"""Training loops: pretraining (and, later, linear probing and fine-tuning)."""
