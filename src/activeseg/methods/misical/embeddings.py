"""Fixed region embeddings phi(r) of MiSiCAL (spec ``misical.md`` section 3), computed once and cached.

Three kinds:

- ``imagenet``: the frozen encoder's deepest feature map (stride 32) averaged over each region's cell.
  In this project that encoder is EfficientNet-Lite0 with its ImageNet weights (the spec's example is a
  ResNet-18; Lite0 is the ImageNet network available locally).
- ``seg_start``: the part of the start model that was trained on D_T labels. The project's encoder is
  the frozen ImageNet Lite0, so its own feature map would equal ``imagenet``; the trained part is the
  FPN decoder, so ``seg_start`` pools the decoder's fused features (``FPNDecoder.embed``: stride 4, just
  before the dropout and the classifier).
- ``handcrafted``: per cell, a colour histogram (3 channels x 8 bins, each channel summing to 1) and the
  mean Sobel gradient magnitude of the grey image (channel mean), scaled to [0, 1]. Needs uint8
  images, no model: the dependency-free fallback.

A cell ``(y0, y1, x0, x1)`` is mapped to a feature map of stride s as ``floor(y0 / s) .. ceil(y1 / s)``
(same for x), so every cell covers at least one feature cell (neighbouring cells may share one). The
pooled encoder/decoder part is L2-normalised; the handcrafted part is not (its entries are already on
[0, 1] scales). With ``add_position`` the cell's ``(row / (rows - 1), col / (cols - 1))`` is appended,
unnormalised: ``(row / 3, col / 5)`` on the 4 x 6 CamVid grid.

``EmbeddingCache`` keys a result by (kind, a digest of the inputs, the grid, the model's fingerprint,
``add_position``) and keeps it in memory and optionally on disk (atomic writes): a second request for
the same embeddings runs no encoder or decoder.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Literal, Union

import torch
import torch.nn.functional as F
from torch import nn

from activeseg.al.strategies import encoded_inputs
from activeseg.features import image_digest
from activeseg.fileio import atomic_torch_save
from activeseg.models.segmenter import Segmenter
from activeseg.regions import RegionGrid
from activeseg.train.sources import ConcatSource, FeatureSource, ImageSource

log = logging.getLogger(__name__)

EmbeddingKind = Literal["seg_start", "imagenet", "handcrafted"]
KINDS = ("seg_start", "imagenet", "handcrafted")
Source = Union[ImageSource, FeatureSource, ConcatSource]
HIST_BINS = 8
SOBEL_MAX = 4 * math.sqrt(2)  # largest Sobel magnitude of an image with values in [0, 1]
CACHE_VERSION = "misical-emb-v1"  # part of every cache key: bump it when the computation changes
SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


# --- pooling and the parts of an embedding ------------------------------------------------------

def cell_bounds(grid: RegionGrid, stride: int, size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Feature-map box ``(fy0, fy1, fx0, fx1)`` (half-open) of every region, on a map of ``size`` = (h, w)
    at ``stride``: floor of the scaled top/left, ceil of the scaled bottom/right, clipped to the map and
    at least one feature cell wide."""
    h, w = size
    out = []
    for rid in range(grid.regions_per_image):
        y0, y1, x0, x1 = grid.box(rid)
        fy0, fx0 = min(y0 // stride, h - 1), min(x0 // stride, w - 1)
        fy1, fx1 = min(math.ceil(y1 / stride), h), min(math.ceil(x1 / stride), w)
        out.append((fy0, max(fy1, fy0 + 1), fx0, max(fx1, fx0 + 1)))
    return out


def pool_cells(fmap: torch.Tensor, grid: RegionGrid, stride: int) -> torch.Tensor:
    """Average of a feature map over each region's cell (see ``cell_bounds``).

    Shape:
        fmap ``[N, C, h, w]`` -> ``[N, R, C]``.
    """
    bounds = cell_bounds(grid, stride, tuple(fmap.shape[-2:]))
    return torch.stack([fmap[..., a:b, c:d].mean(dim=(-2, -1)) for a, b, c, d in bounds], dim=1)  # R x [N, C]


def position_columns(grid: RegionGrid) -> torch.Tensor:
    """``(row / (rows - 1), col / (cols - 1))`` of every region (0 along an axis with one cell).

    Shape: ``[R, 2]``.
    """
    rid = torch.arange(grid.regions_per_image)
    row, col = rid // grid.cols, rid % grid.cols
    return torch.stack([row / max(grid.rows - 1, 1), col / max(grid.cols - 1, 1)], dim=1).float()


def handcrafted_features(images: torch.Tensor, grid: RegionGrid) -> torch.Tensor:
    """Colour histogram (3 channels x 8 bins, each channel's 8 fractions summing to 1; channel-major) and
    mean Sobel gradient magnitude of the grey image, scaled to [0, 1], of every region.

    Shape:
        images ``[N, 3, H, W]`` uint8 -> ``[N, R, 25]``.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"handcrafted embeddings need uint8 images [N, 3, H, W], got {images.dtype} "
                         f"{tuple(images.shape)}")
    n, _, height, width = images.shape
    bins = images.long() * HIST_BINS // 256  # [N, 3, H, W], bin of every value
    flat = bins.reshape(n * 3, height, width)  # [N*3, H, W]
    # the mean of a bin's indicator over a region is that bin's fraction of the region's pixels
    hist = torch.stack([grid.pool((flat == b).float()) for b in range(HIST_BINS)], dim=-1)  # [N*3, R, 8]
    hist = hist.reshape(n, 3, -1, HIST_BINS).permute(0, 2, 1, 3).reshape(n, -1, 3 * HIST_BINS)  # [N, R, 24]
    grey = images.float().mean(1, keepdim=True) / 255  # [N, 1, H, W]
    kernels = torch.stack([SOBEL_X, SOBEL_X.T])[:, None].to(images.device)  # [2, 1, 3, 3]: d/dx, d/dy
    grad = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)  # [N, 2, H, W]
    magnitude = grad.pow(2).sum(1).sqrt() / SOBEL_MAX  # [N, H, W]
    return torch.cat([hist, grid.pool(magnitude)[..., None]], dim=-1)  # [N, R, 25]


# --- region_embeddings -----------------------------------------------------------------------------

def _check_kind(kind: str, model: Segmenter | None) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown embedding kind {kind!r}; use one of {', '.join(KINDS)}")
    if kind != "handcrafted" and model is None:
        raise ValueError(f"{kind!r} embeddings need the segmentation model; pass model=, or use 'handcrafted'")


def _count(source: Source | None, images: torch.Tensor | None) -> int:
    if images is not None:
        return len(images)
    if source is None:
        raise ValueError("pass a source or images=")
    return len(source)


def _uint8_images(source: Source | None, images: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor:
    if images is not None:
        return images[idx]
    x, _ = source.inputs(idx, torch.zeros(len(idx), dtype=torch.bool), None)
    if not isinstance(x, torch.Tensor):
        raise ValueError("handcrafted embeddings need pixels, but the source holds cached encoder features; "
                         "pass an ImageSource or the uint8 images as images=")
    return x


def _encoded(model: Segmenter, source: Source | None, images: torch.Tensor | None, idx: torch.Tensor,
             device: torch.device, grid: RegionGrid) -> list[torch.Tensor]:
    if images is not None:
        x = images[idx].to(device)
        feats, size = model.encode(x), tuple(x.shape[-2:])
    else:
        feats, size = encoded_inputs(model, source, idx, device)
    if size != (grid.height, grid.width):
        raise ValueError(f"images are {size[0]}x{size[1]} but the region grid is {grid.height}x{grid.width}; "
                         "build the grid at the working resolution (RegionGrid.from_counts(H, W, rows, cols))")
    return [f.float() for f in feats]


@torch.no_grad()
def region_embeddings(kind: EmbeddingKind, source: Source | None, grid: RegionGrid, model: Segmenter | None = None,
                      device: torch.device = torch.device("cpu"), add_position: bool = True, batch_size: int = 16,
                      images: torch.Tensor | None = None) -> torch.Tensor:
    """Fixed embedding of every region of every image (computed now; ``EmbeddingCache`` remembers them).

    Args:
        kind: 'imagenet' (the encoder's stride-32 map), 'seg_start' (the start model's decoder features
            at stride 4) or 'handcrafted' (colour histogram + gradient; no model).
        source: the images, as pixels (``ImageSource``) or cached encoder features (``FeatureSource``);
            ignored when ``images`` is given.
        grid: the regions, at the images' resolution.
        model: the segmentation model (start model for 'seg_start'); not used by 'handcrafted'.
        device: where the model runs.
        add_position: append the cell's normalised (row, col).
        batch_size: images per forward pass.
        images: uint8 images to use instead of ``source``.

    Shape:
        images ``[N, 3, H, W]`` uint8 -> ``[N, R, d]`` float32 on the CPU; d = 25 (handcrafted), the
        encoder's deepest channels (imagenet) or ``decoder_width / 2`` (seg_start), + 2 with positions.
    """
    _check_kind(kind, model)
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    n, parts = _count(source, images), []
    try:
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n))
            if kind == "handcrafted":
                parts.append(handcrafted_features(_uint8_images(source, images, idx), grid).cpu())
                continue
            feats = _encoded(model, source, images, idx, device, grid)
            if kind == "imagenet":
                fmap, stride = feats[-1], model.encoder.strides[-1]
            else:
                fmap, stride = model.decoder.embed(feats), model.encoder.strides[0]
            parts.append(F.normalize(pool_cells(fmap, grid, stride), dim=-1).cpu())  # [B, R, C], unit rows
    finally:
        if model is not None:
            model.train(was_training)
    emb = torch.cat(parts).float()  # [N, R, d]
    if add_position:
        pos = position_columns(grid).expand(len(emb), -1, -1)  # [N, R, 2]
        emb = torch.cat([emb, pos], dim=-1)
    return emb


# --- the cache ---------------------------------------------------------------------------------------

def _module_digest(module: nn.Module) -> str:
    h = hashlib.sha1(type(module).__name__.encode())
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def model_fingerprint(kind: EmbeddingKind, model: Segmenter | None) -> str:
    """What of the model an embedding depends on: nothing (handcrafted), the encoder (imagenet), the
    encoder and the decoder (seg_start)."""
    if kind == "handcrafted":
        return "none"
    fingerprint = model.encoder_fingerprint()
    if kind == "seg_start":
        fingerprint += "-" + _module_digest(model.decoder)
    return fingerprint


def inputs_digest(source: Source | None, images: torch.Tensor | None = None, batch_size: int = 16) -> str:
    """Digest of the inputs of every image, in order: the pixels of uint8 images, or the cached
    encoder features of a feature source (independent of ``batch_size``)."""
    h = hashlib.sha1()
    n = _count(source, images)
    for start in range(0, n, batch_size):
        idx = torch.arange(start, min(start + batch_size, n))
        x = images[idx] if images is not None else source.inputs(idx, torch.zeros(len(idx), dtype=torch.bool),
                                                                 None)[0]
        for j in range(len(idx)):
            if isinstance(x, torch.Tensor):
                h.update(image_digest(x[j].cpu()).encode())
            else:  # one image's features, level by level
                for level in x:
                    h.update(str(tuple(level[j].shape)).encode())
                    h.update(level[j].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


class EmbeddingCache:
    """Computes region embeddings once per (kind, inputs, grid, model fingerprint, add_position) and
    returns the remembered ones after that, from memory or from ``cache_dir``.

    Args:
        cache_dir: folder of the on-disk entries, or None to keep them in memory only.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self._memory: dict[str, torch.Tensor] = {}
        self.hits = self.misses = 0

    @staticmethod
    def key(kind: EmbeddingKind, source: Source | None, grid: RegionGrid, model: Segmenter | None,
            add_position: bool, images: torch.Tensor | None = None) -> str:
        """The cache key of one request (reads the inputs to digest them; runs no model)."""
        _check_kind(kind, model)
        parts = [CACHE_VERSION, kind, f"{grid.height}x{grid.width}/{grid.region_h}x{grid.region_w}",
                 f"pos={int(add_position)}", model_fingerprint(kind, model), inputs_digest(source, images)]
        return hashlib.sha1("|".join(parts).encode()).hexdigest()[:20]

    def path(self, kind: EmbeddingKind, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / "misical_embeddings" / f"{kind}-{key}.pt"

    def get(self, kind: EmbeddingKind, source: Source | None, grid: RegionGrid, model: Segmenter | None = None,
            device: torch.device = torch.device("cpu"), add_position: bool = True, batch_size: int = 16,
            images: torch.Tensor | None = None) -> torch.Tensor:
        """``region_embeddings(...)`` (same arguments), from memory, disk, or computed, in that order.

        Shape:
            ``[N, R, d]`` float32 (a copy: changing it leaves the cache intact).
        """
        key = self.key(kind, source, grid, model, add_position, images)
        if key in self._memory:
            self.hits += 1
            return self._memory[key].clone()
        path = self.path(kind, key)
        if path is not None and path.is_file():
            try:
                self._memory[key] = torch.load(path, map_location="cpu", weights_only=True)["embeddings"]
                self.hits += 1
                return self._memory[key].clone()
            except Exception:  # an unreadable entry is recomputed and rewritten
                log.warning("recomputing unreadable embedding cache entry %s", path)
        self.misses += 1
        emb = region_embeddings(kind, source, grid, model, device, add_position, batch_size, images)
        self._memory[key] = emb
        if path is not None:
            atomic_torch_save({"embeddings": emb, "kind": kind, "add_position": add_position}, path)
        return emb.clone()
