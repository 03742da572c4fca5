"""Glue between data, model and trainer shared by the commands: where batches come from."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import platformdirs
import torch

from activeseg.data.folder import SegmentationSplit, load_split, native_size
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


def resolve_test_size(size: tuple[int, int] | str | None, dataset_dir: Path, split: str
                      ) -> tuple[int, int] | None:
    """'native': the size every label of the split shares (None, the working size, if they differ)."""
    if size == "native":
        return native_size(dataset_dir, split)
    return None if size is None else (int(size[0]), int(size[1]))


def scored_at(source: FeatureSource | ImageSource, dataset_dir: Path, split: str, size: tuple[int, int] | None,
              working: tuple[int, int], fit: str, progress: bool = True) -> FeatureSource | ImageSource:
    """``source`` with its labels at ``size`` (a resolved test size; logits are upsampled to them when
    scored); None or the working size: unchanged. Every command scores test this way."""
    if size is None or tuple(size) == tuple(working):
        return source
    labels = load_split(dataset_dir, split, tuple(size), fit, progress=progress).labels
    return replace(source, labels=labels)


def scale_note(size: tuple[int, int] | None, working: tuple[int, int]) -> str:
    """``'scored at 360x480'`` (H x W) for a report line."""
    h, w = tuple(size) if size is not None else tuple(working)
    return f"scored at {h}x{w}"


def coarsest_stride(model: Segmenter) -> int:
    return int(max(model.encoder.strides))


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
