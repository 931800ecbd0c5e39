"""Adapters that transfer ASL encoders to detectron2 and mmsegmentation."""
