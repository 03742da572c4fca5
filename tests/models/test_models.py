import pytest
import torch

from activeseg.errors import ConfigError
from activeseg.models import ModelConfig, build_model
from activeseg.models.efficientnet_lite import (
    EfficientNetLite0Encoder,
    SameConv2d,
    load_pretrained,
)


def test_same_padding_matches_tensorflow():
    # TF SAME, stride 2, kernel 3 on 6 columns: output 3, total pad 1, all of it at the end
    conv = SameConv2d(1, 1, 3, 2, bias=False)
    conv.weight.data.fill_(1.0)
    x = torch.arange(6.0).reshape(1, 1, 1, 6).expand(1, 1, 4, 6).contiguous()
    y = conv(x)
    assert y.shape == (1, 1, 2, 3)
    # 4 rows: pad 1 at the bottom; output row 0 sums rows 0..2, columns 0..2 -> 3 * (0+1+2) = 9; last sums 4,5,pad -> 27
    assert y[0, 0, 0].tolist() == [9.0, 27.0, 27.0]


def test_lite0_loads_every_pretrained_weight_and_tap_shapes():
    enc = EfficientNetLite0Encoder()
    before = enc.stem[0].weight.clone()
    load_pretrained(enc)  # strict: every parameter and buffer is covered
    assert not torch.equal(before, enc.stem[0].weight)
    enc.eval()
    with torch.no_grad():
        feats = enc(torch.zeros(1, 3, 180, 240))
    assert [tuple(f.shape[1:]) for f in feats] == [(24, 45, 60), (40, 23, 30), (112, 12, 15), (320, 6, 8)]


@pytest.mark.parametrize("encoder", ["tiny", "lite0"])
def test_logits_at_input_resolution(encoder):
    model = build_model(ModelConfig(encoder=encoder, pretrained=False), num_classes=7).eval()
    x = torch.randint(0, 255, (2, 3, 50, 70), dtype=torch.uint8)
    with torch.no_grad():
        assert model(x).shape == (2, 7, 50, 70)
        assert model(model.encode(x), out_size=(50, 70)).shape == (2, 7, 50, 70)


def test_frozen_encoder_has_no_gradients_and_stays_in_eval():
    model = build_model(ModelConfig(encoder="tiny", pretrained=False), 3).train()
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert not model.encoder.training and model.decoder.training
    tuned = build_model(ModelConfig(encoder="tiny", freeze_encoder=False), 3).train()
    assert all(p.requires_grad for p in tuned.encoder.parameters()) and tuned.encoder.training


def test_dropout_layer_can_be_switched_on_alone():
    model = build_model(ModelConfig(encoder="tiny", dropout=0.5), 3).eval()
    x = torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        a, b = model(x), model(x)
        assert torch.equal(a, b)
        model.decoder.dropout.train()
        assert not torch.equal(model(x), model(x))


def test_encoder_fingerprint_changes_with_weights():
    model = build_model(ModelConfig(encoder="tiny"), 3)
    f0 = model.encoder_fingerprint()
    assert f0 == model.encoder_fingerprint()
    with torch.no_grad():
        next(model.encoder.parameters()).add_(1e-3)
    assert model.encoder_fingerprint() != f0


def test_bad_model_config_says_what_to_use():
    with pytest.raises(ConfigError, match="'lite0' or 'tiny'"):
        ModelConfig(encoder="resnet")
