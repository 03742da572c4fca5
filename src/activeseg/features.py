"""Feature cache: a frozen encoder's multi-scale features, computed once per image.

Features of each image and of its horizontal mirror (for flip augmentation) are stored as float16,
in memory and optionally on disk. The key of an image's entry is (dataset, working resolution,
a digest of the resized image's pixels, a fingerprint of the encoder's weights); any change of any of
them gives a new key, so a stale entry is never read. Disk entries are written atomically
(temporary file + rename): an interrupt leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from activeseg.fileio import atomic_torch_save
from activeseg.models.segmenter import Segmenter

log = logging.getLogger(__name__)


@dataclass
class FeatureBank:
    """Cached features of a list of images.

    Attributes:
        levels: one float16 tensor per encoder level; index 0 of dim 1 is the image, 1 its mirror.
            Shape: ``[N, 2, C_i, h_i, w_i]``.
    """

    levels: list[torch.Tensor]

    def __len__(self) -> int:
        return self.levels[0].shape[0]

    def get(self, index: torch.Tensor, flipped: torch.Tensor) -> list[torch.Tensor]:
        """Features of images ``index`` (mirrored where ``flipped``), still float16.

        Shape:
            index, flipped ``[B]`` -> list of ``[B, C_i, h_i, w_i]``.
        """
        return [lvl[index, flipped.long()] for lvl in self.levels]

    def nbytes_per_image(self) -> int:
        return sum(lvl[0].numel() * lvl.element_size() for lvl in self.levels)


def image_digest(image: torch.Tensor) -> str:
    """Digest of one uint8 image's pixels and shape. Shape: ``[3, H, W]``."""
    h = hashlib.sha1(str(tuple(image.shape)).encode())
    h.update(image.contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


class FeatureCache:
    """Computes, remembers and (optionally) persists frozen-encoder features.

    Args:
        model: the segmenter; its encoder must be frozen.
        device: where the encoder runs.
        dataset: dataset name, part of the key.
        cache_dir: folder for the on-disk cache, or None to keep features in memory only.
        batch_size: images per encoder forward pass.
        progress: show a progress bar while computing.
    """

    def __init__(self, model: Segmenter, device: torch.device, dataset: str, cache_dir: Path | None = None,
                 batch_size: int = 16, progress: bool = True) -> None:
        if not model.freeze_encoder:
            raise ValueError("the feature cache needs a frozen encoder (model.freeze_encoder=True)")
        self.model, self.device, self.batch_size, self.progress = model, device, batch_size, progress
        self.fingerprint = model.encoder_fingerprint()
        self.dataset = dataset
        self.cache_dir = cache_dir
        self._memory: dict[str, list[torch.Tensor]] = {}
        self.hits = self.misses = 0

    def _path(self, digest: str, size: tuple[int, int]) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / self.dataset / f"enc-{self.fingerprint}" / f"{size[0]}x{size[1]}" / f"{digest}.pt"

    def bank(self, images: torch.Tensor) -> FeatureBank:
        """Features of ``images``, from memory, disk, or the encoder, in that order.

        Shape:
            images ``[N, 3, H, W]`` uint8.
        """
        size = tuple(images.shape[-2:])
        digests = [image_digest(img) for img in images]
        todo = []
        for i, d in enumerate(digests):
            if d in self._memory:
                self.hits += 1
                continue
            path = self._path(d, size)
            if path is not None and path.is_file():
                try:
                    self._memory[d] = torch.load(path, map_location="cpu", weights_only=True)
                    self.hits += 1
                    continue
                except Exception:  # an unreadable entry is recomputed and rewritten
                    log.warning("recomputing unreadable cache entry %s", path)
            todo.append(i)
        self.misses += len(todo)
        self._compute(images, digests, todo, size)
        per_image = [self._memory[d] for d in digests]
        return FeatureBank([torch.stack([f[lvl] for f in per_image]) for lvl in range(len(per_image[0]))])

    @torch.no_grad()
    def _compute(self, images: torch.Tensor, digests: list[str], todo: list[int], size: tuple[int, int]) -> None:
        self.model.eval()
        bar = tqdm(total=len(todo), desc="encode (feature cache)", disable=not self.progress or not todo, leave=False)
        for start in range(0, len(todo), self.batch_size):
            rows = todo[start:start + self.batch_size]
            x = images[rows].to(self.device)
            feats = self.model.encode(x)
            feats_flip = self.model.encode(x.flip(-1))
            for j, i in enumerate(rows):
                # per level: [2, C, h, w], image then mirror
                entry = [torch.stack([f[j], g[j]]).half().cpu() for f, g in zip(feats, feats_flip)]
                self._memory[digests[i]] = entry
                path = self._path(digests[i], size)
                if path is not None:
                    atomic_torch_save(entry, path)
            bar.update(len(rows))
        bar.close()

