"""mmsegmentation adapter (UperNet)."""
