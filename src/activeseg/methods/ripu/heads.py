"""RIPU's two extra losses as loss-only auxiliary heads (spec section 3): negative learning on target
images, local consistency on source boundary pixels. They carry no parameters and store no output;
the trainer adds them like any head's loss, on the images of their domain."""

from __future__ import annotations

import torch

from activeseg.methods.ripu.losses import boundary_mask, local_consistency_loss, negative_learning_loss
from activeseg.models.heads import AuxHead, register_head


class NegativeLearningHead(AuxHead):
    """lambda_nl * L_nl over every pixel of the target images of a batch (labelled or not)."""

    produces_output = False
    domain = "target"

    def __init__(self, spec: dict, num_classes: int) -> None:
        super().__init__()
        self.spec = {"type": "ripu_nl", "weight": 1.0, "tau": 0.05, **spec}

    def loss(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        return self.spec["weight"] * negative_learning_loss(outputs["logits"], self.spec["tau"])


class LocalConsistencyHead(AuxHead):
    """lambda_cr * L_cr over the semantic-boundary pixels of the source images of a batch."""

    produces_output = False
    domain = "source"

    def __init__(self, spec: dict, num_classes: int) -> None:
        super().__init__()
        self.spec = {"type": "ripu_cr", "weight": 0.1, "boundary": "neighbour_differs", **spec}
        self.num_classes = num_classes

    def loss(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            mask = boundary_mask(labels, self.num_classes, self.spec["boundary"])
        return self.spec["weight"] * local_consistency_loss(outputs["logits"], mask)


register_head("ripu_nl", NegativeLearningHead)
register_head("ripu_cr", LocalConsistencyHead)
