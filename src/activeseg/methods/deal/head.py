"""DEAL's difficulty branch (spec section 1.2) and its loss (section 2).

The branch reads the segmentation logits at stride 4: a bilinear resize to the attention grid, the
probability attention module (PAM), a 1x1 conv C -> 1, bilinear upsampling to H x W and a sigmoid
(after the upsampling), giving the semantic difficulty map M^d in (0, 1). Its target is the error mask
M^e (1 where the segmentation branch is wrong), recomputed for every batch without gradient.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from activeseg import UNLABELLED
from activeseg.models.heads import AuxHead, register_head
from activeseg.train.metrics import auroc


class ProbabilityAttention(nn.Module):
    """PAM: O = gamma * (P A^T) + P with P = softmax over classes, A = row-softmax of P^T P.

    Pixels with similar class distributions pool each other's probabilities; gamma is learnable.

    Shape:
        logits ``[N, C, h, w]`` -> ``[N, C, h, w]``.
    """

    def __init__(self, gamma_init: float = 0.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))

    def attention(self, probs: torch.Tensor) -> torch.Tensor:
        """A = softmax over each row of E = P^T P. Shape: ``[N, C, M]`` -> ``[N, M, M]``."""
        energy = probs.transpose(1, 2) @ probs  # [N, M, M]
        return energy.softmax(-1)

    def attend(self, probs: torch.Tensor) -> torch.Tensor:
        """O from the probabilities. Shape: ``[N, C, h, w]`` -> ``[N, C, h, w]``."""
        n, c, h, w = probs.shape
        p = probs.reshape(n, c, h * w)  # [N, C, M]
        pooled = p @ self.attention(p).transpose(1, 2)  # [N, C, M]: O[:, i] gathers sum_j A[i, j] P[:, j]
        return (self.gamma * pooled + p).reshape(n, c, h, w)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.attend(logits.softmax(1))


def attention_grid(coarse: tuple[int, int], pam_grid: tuple[int, int] | None) -> tuple[int, int]:
    """The PAM grid: ``pam_grid``, or H/6 x W/6 of the input, whose stride-4 logits are ``coarse``
    (30 x 40 at 180 x 240, 60 x 80 at 360 x 480)."""
    if pam_grid is not None:
        return int(pam_grid[0]), int(pam_grid[1])
    return max(1, round(coarse[0] * 4 / 6)), max(1, round(coarse[1] * 4 / 6))


def error_mask(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """M^e: 1 where the predicted class differs from a class label; 0 where the label is no class.

    Shape:
        logits ``[N, C, H, W]``, labels ``[N, H, W]`` -> ``[N, H, W]`` float.
    """
    target = labels.long()
    is_class = target < logits.shape[1]
    return ((logits.argmax(1) != target) & is_class).float()


def wce_weights(n_right: int | torch.Tensor, n_wrong: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced weights w_k proportional to 1/sqrt(n_k + 1), normalised to sum to 1."""
    raw = 1.0 / torch.sqrt(torch.as_tensor([float(n_right), float(n_wrong)], dtype=torch.float64) + 1.0)
    w = raw / raw.sum()
    return w[0], w[1]


def loss_mask(labels: torch.Tensor, num_classes: int, unlabelled: str, void: str) -> torch.Tensor:
    """Pixels that enter the difficulty loss: class pixels always; 255 unless ``unlabelled`` is
    'exclude'; other values >= C (void) unless ``void`` is 'exclude'. Shape: ``[N, H, W]`` bool."""
    target = labels.long()
    keep = torch.ones_like(target, dtype=torch.bool)
    if unlabelled == "exclude":
        keep &= target != UNLABELLED
    if void == "exclude":
        keep &= (target < num_classes) | (target == UNLABELLED)
    return keep


def difficulty_loss(difficulty: torch.Tensor, errors: torch.Tensor, keep: torch.Tensor, kind: str = "wce"
                    ) -> torch.Tensor:
    """L_dif over the ``keep`` pixels: 'wce' = w_right * mean BCE(M^d, 0) over right pixels + w_wrong *
    mean BCE(M^d, 1) over wrong ones (an empty group adds 0); 'bce' = the plain mean BCE.

    Shape:
        difficulty, errors ``[N, H, W]`` (M^d in (0, 1), M^e in {0, 1}), keep ``[N, H, W]`` bool -> scalar.
    """
    if not keep.any():
        return difficulty.sum() * 0.0
    bce = F.binary_cross_entropy(difficulty[keep], errors[keep], reduction="none")
    if kind == "bce":
        return bce.mean()
    wrong = errors[keep] > 0.5
    n_wrong = int(wrong.sum())
    n_right = int(wrong.numel()) - n_wrong
    w_right, w_wrong = (w.to(bce) for w in wce_weights(n_right, n_wrong))
    loss = difficulty.sum() * 0.0
    if n_right:
        loss = loss + w_right * bce[~wrong].mean()
    if n_wrong:
        loss = loss + w_wrong * bce[wrong].mean()
    return loss


class DifficultyHead(AuxHead):
    """The semantic difficulty map M^d from the segmentation logits (output key: the head's name,
    conventionally ``difficulty``).

    Args:
        num_classes: C, the channels of the logits.
        spec: ``DealConfig.head_spec()``: pam_grid, gamma_init, loss, weight, detach_logits,
            unlabelled, void.

    Shape:
        logits ``[N, C, h, w]`` (stride 4) -> M^d ``[N, H, W]`` in (0, 1).
    """

    def __init__(self, num_classes: int, spec: dict) -> None:
        super().__init__()
        self.spec = dict(spec)
        self.num_classes = num_classes
        self.pam = ProbabilityAttention(spec.get("gamma_init", 0.0))
        self.conv = nn.Conv2d(num_classes, 1, 1)
        self.grid = tuple(spec["pam_grid"]) if spec.get("pam_grid") else None
        self.output_key = "difficulty"

    def forward(self, logits: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        if self.spec.get("detach_logits", False):
            logits = logits.detach()
        grid = attention_grid(tuple(logits.shape[-2:]), self.grid)
        x = F.interpolate(logits, size=grid, mode="bilinear", align_corners=False)  # [N, C, h', w']
        x = self.conv(self.pam(x))  # [N, 1, h', w']
        x = F.interpolate(x, size=out_size, mode="bilinear", align_corners=False)
        return torch.sigmoid(x[:, 0])  # sigmoid after upsampling: [N, H, W]

    def loss(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        difficulty = outputs[self.output_key]
        with torch.no_grad():
            errors = error_mask(outputs["logits"], labels)
            keep = loss_mask(labels, self.num_classes, self.spec.get("unlabelled", "exclude"),
                             self.spec.get("void", "as_correct"))
        return self.spec.get("weight", 1.0) * difficulty_loss(difficulty, errors, keep, self.spec.get("loss", "wce"))

    def new_metrics(self) -> "DifficultyAUROC":
        return DifficultyAUROC(self.output_key)


class DifficultyAUROC:
    """AUROC of M^d for predicting errors, over the pixels whose label is a class (positives: wrong
    predictions). Reported as ``difficulty_auroc`` (None when one of the groups is empty)."""

    def __init__(self, key: str = "difficulty") -> None:
        self.key = key
        self.scores: list[torch.Tensor] = []
        self.errors: list[torch.Tensor] = []

    def update(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        is_class = labels.long() < outputs["logits"].shape[1]
        self.scores.append(outputs[self.key][is_class].float().cpu())
        self.errors.append(error_mask(outputs["logits"], labels)[is_class].bool().cpu())

    def result(self) -> dict[str, float | None]:
        value = auroc(torch.cat(self.scores), torch.cat(self.errors)) if self.scores else math.nan
        return {"difficulty_auroc": None if math.isnan(value) else value}


register_head("deal_difficulty", lambda spec, num_classes: DifficultyHead(num_classes, spec))
