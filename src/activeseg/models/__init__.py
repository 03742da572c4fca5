"""Segmentation networks: encoders, the FPN decoder and the model that joins them."""

from activeseg.models.segmenter import ModelConfig, Segmenter, build_model

__all__ = ["ModelConfig", "Segmenter", "build_model"]
