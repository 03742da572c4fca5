"""Glue between data, model and trainer shared by the commands: where batches come from."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import torch

from activeseg.data.folder import SegmentationSplit
from activeseg.features import FeatureCache
from activeseg.models.segmenter import Segmenter
from activeseg.train.sources import FeatureSource, ImageSource


def default_cache_dir() -> Path:
    """Where the on-disk feature cache lives unless ``--cache-dir`` says otherwise."""
    return Path(platformdirs.user_cache_dir("activeseg")) / "features"


def make_source(model: Segmenter, split: SegmentationSplit, cache: FeatureCache | None
                ) -> FeatureSource | ImageSource:
    """Cached features when the encoder is frozen and a cache is given, raw images otherwise."""
    if cache is not None and model.freeze_encoder:
        return FeatureSource(cache.bank(split.images), split.labels, tuple(model.encoder.strides))
    return ImageSource(split.images, split.labels)


def coarsest_stride(model: Segmenter) -> int:
    return int(max(model.encoder.strides))


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
