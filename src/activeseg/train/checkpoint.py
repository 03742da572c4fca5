"""Checkpoints: model weights with everything needed to rebuild the model and read its outputs."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from activeseg.data.classes import ClassInfo
from activeseg.errors import ActiveSegError
from activeseg.fileio import atomic_torch_save
from activeseg.models.segmenter import ModelConfig, Segmenter, build_model


def save_checkpoint(path: Path, model: Segmenter, model_cfg: ModelConfig, classes: ClassInfo,
                    image_size: tuple[int, int], extra: dict | None = None) -> None:
    """Writes atomically: an interrupted save leaves the previous checkpoint intact."""
    payload = {
        "format": "activeseg-checkpoint-1",
        "model_config": asdict(model_cfg),
        "classes": classes.to_json(),
        "image_size": list(image_size),
        "heads": model.head_specs(),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    atomic_torch_save(payload, path)

def load_checkpoint(path: Path, device: torch.device) -> tuple[Segmenter, dict]:
    """Rebuilds the model of a checkpoint on ``device``; returns it with the checkpoint's metadata."""
    remedy = ("Remedy: pass a model checkpoint: the model.pt written by `activeseg train`, or a start_model-*.pt "
              "beside a run store (agent files and run stores are not model checkpoints)")
    if Path(path).is_dir():
        raise ActiveSegError(f"{path} is a folder. {remedy}")
    if not Path(path).is_file():
        raise ActiveSegError(f"{path}: checkpoint not found. {remedy}")
    try:  # only activeseg's own format is read: no code in the file is ever run
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise ActiveSegError(f"{path}: not a checkpoint this tool can read (not a PyTorch file of plain "
                             f"tensors and values). {remedy}") from None
    if not isinstance(payload, dict) or payload.get("format") != "activeseg-checkpoint-1":
        raise ActiveSegError(f"{path}: a PyTorch file, but not an activeseg model checkpoint. {remedy}")
    cfg = ModelConfig(**{**payload["model_config"], "pretrained": False})
    classes = payload["classes"]
    heads = payload.get("heads") or None  # checkpoints written before heads existed have none
    if heads:
        import activeseg.methods  # noqa: F401  (each method registers its head types)
    model = build_model(cfg, len(classes["classes"]), heads)
    model.load_state_dict(payload["state_dict"])
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.to(device), meta
