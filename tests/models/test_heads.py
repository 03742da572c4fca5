"""Auxiliary heads: the model carries them, the trainer adds their losses, checkpoints rebuild them."""

import pytest
import torch

from activeseg.data.classes import ClassInfo
from activeseg.errors import ConfigError
from activeseg.models import ModelConfig, build_model
from activeseg.models.heads import AuxHead, build_head, register_head
from activeseg.train.checkpoint import load_checkpoint, save_checkpoint
from activeseg.train.trainer import model_loss, segmentation_loss

CFG = ModelConfig(encoder="tiny", pretrained=False, decoder_width=16)


class MeanHead(AuxHead):
    """A test head: the mean logit per pixel; its loss is ``weight`` x the mean of its output squared."""

    def __init__(self, spec, num_classes):
        super().__init__()
        self.spec = dict(spec)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, logits, out_size):
        return self.scale * torch.nn.functional.interpolate(logits, size=out_size, mode="bilinear").mean(1)

    def loss(self, outputs, labels):
        return self.spec["weight"] * outputs[self.output_key].pow(2).mean()


register_head("test_mean", MeanHead)


def test_outputs_hold_the_logits_of_forward_and_every_head():
    torch.manual_seed(0)
    model = build_model(CFG, 4, {"aux": {"type": "test_mean", "weight": 1.0}}).eval()
    x = torch.randint(0, 255, (2, 3, 48, 64), dtype=torch.uint8)
    with torch.no_grad():
        out = model.outputs(x)
        assert set(out) == {"logits", "aux"} and out["aux"].shape == (2, 48, 64)
        assert torch.allclose(out["logits"], model(x))  # forward is unchanged: logits only
        feats = model.encode(x)
        assert torch.allclose(model.outputs(feats, (48, 64))["aux"], out["aux"])  # cached features work


def test_trainer_adds_every_head_loss():
    torch.manual_seed(0)
    model = build_model(CFG, 4, {"aux": {"type": "test_mean", "weight": 3.0}}).eval()
    x = torch.randint(0, 255, (2, 3, 48, 64), dtype=torch.uint8)
    labels = torch.randint(0, 4, (2, 48, 64), dtype=torch.uint8)
    out = model.outputs(x)
    expected = segmentation_loss(out["logits"], labels) + 3.0 * out["aux"].pow(2).mean()
    assert torch.allclose(model_loss(model, x, labels), expected)
    plain = build_model(CFG, 4).eval()
    assert torch.allclose(model_loss(plain, x, labels), segmentation_loss(plain(x), labels))


def test_checkpoint_rebuilds_heads_and_old_checkpoints_load(tmp_path):
    from activeseg.methods.deal import DealConfig

    classes = ClassInfo(("a", "b", "c", "d"), ((0, 0, 0),) * 4, None)
    model = build_model(CFG, 4, {"difficulty": DealConfig(pam_gamma_init=0.3).head_spec()})
    save_checkpoint(tmp_path / "m.pt", model, CFG, classes, (48, 64))
    back, meta = load_checkpoint(tmp_path / "m.pt", torch.device("cpu"))
    assert meta["heads"] == model.head_specs() and list(back.heads) == ["difficulty"]
    assert torch.equal(back.heads["difficulty"].pam.gamma, torch.tensor(0.3))
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    plain = build_model(CFG, 4)
    payload.pop("heads")  # a checkpoint written before heads existed
    payload["state_dict"] = plain.state_dict()
    torch.save(payload, tmp_path / "old.pt")
    old, _ = load_checkpoint(tmp_path / "old.pt", torch.device("cpu"))
    assert len(old.heads) == 0


def test_unknown_head_type_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="registered"):
        build_head({"type": "nope"}, 3)
    with pytest.raises(ValueError, match="twice"):
        register_head("test_mean", MeanHead)
