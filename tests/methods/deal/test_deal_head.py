"""The difficulty branch and its loss: the spec's oracles (deal.md section 11) as numbers."""

import math

import pytest
import torch

from activeseg.methods.deal.head import (
    DifficultyHead,
    ProbabilityAttention,
    difficulty_loss,
    error_mask,
    loss_mask,
    wce_weights,
)
from activeseg.methods.deal.config import DealConfig


def test_pam_with_gamma_zero_returns_softmax_exactly():
    logits = torch.randn(2, 5, 4, 6)
    assert torch.equal(ProbabilityAttention(0.0)(logits), logits.softmax(1))


def test_pam_two_pixel_example():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)  # C = 2 classes x N = 2 pixels, one-hot
    pam = ProbabilityAttention(1.0)
    a = pam.attention(probs.reshape(1, 2, 2))[0]
    e = math.e / (math.e + 1)
    assert torch.allclose(a, torch.tensor([[e, 1 - e], [1 - e, e]]))
    assert round(e, 3) == 0.731
    out = pam.attend(probs)[0, :, 0]  # [C, h, w] -> pixel 1
    assert torch.allclose(out[:, 0], torch.tensor([1 + e, 1 - e]))  # [1.731, 0.269]
    assert torch.equal(ProbabilityAttention(0.0).attend(probs), probs)


def test_attention_rows_sum_to_one():
    p = torch.randn(3, 4, 50).softmax(1)
    a = ProbabilityAttention().attention(p)
    assert a.shape == (3, 50, 50) and torch.allclose(a.sum(-1), torch.ones(3, 50))


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_difficulty_map_in_unit_interval_at_input_size(gamma):
    head = DifficultyHead(5, {**DealConfig(pam_gamma_init=gamma).head_spec()})
    md = head(torch.randn(2, 5, 12, 16) * 5, (48, 64))
    assert md.shape == (2, 48, 64) and (md > 0).all() and (md < 1).all()


def test_attention_grid_scales_with_the_input():
    from activeseg.methods.deal.head import attention_grid

    assert attention_grid((45, 60), None) == (30, 40)  # 180 x 240: stride-4 logits 45 x 60
    assert attention_grid((90, 120), None) == (60, 80)  # 360 x 480
    assert attention_grid((45, 60), (10, 12)) == (10, 12)


def test_error_mask():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1] = 1.0  # predicts class 1 everywhere
    assert error_mask(logits, torch.ones(1, 2, 2, dtype=torch.uint8)).sum() == 0  # prediction = label
    labels = torch.tensor([[[0, 1], [3, 255]]], dtype=torch.uint8)  # 3 (void) and 255: ignore
    assert error_mask(logits, labels).tolist() == [[[1.0, 0.0], [0.0, 0.0]]]


def test_wce_weights():
    w_right, w_wrong = wce_weights(9999, 99)
    assert round(float(w_right), 4) == 0.0909 and round(float(w_wrong), 4) == 0.9091
    for n_right, n_wrong in [(0, 0), (5, 0), (1, 10**6), (123, 456)]:
        assert math.isclose(float(sum(wce_weights(n_right, n_wrong))), 1.0)


def test_wce_loss_by_hand():
    md = torch.tensor([[0.2, 0.4, 0.9, 0.5]])
    errors = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    keep = torch.ones(1, 4, dtype=torch.bool)
    w = 1 / math.sqrt(3)
    w_right = w_wrong = w / (2 * w)
    expected = w_right * -(math.log(0.8) + math.log(0.6)) / 2 + w_wrong * -(math.log(0.9) + math.log(0.5)) / 2
    assert math.isclose(float(difficulty_loss(md, errors, keep)), expected, rel_tol=1e-6)
    plain = -(math.log(0.8) + math.log(0.6) + math.log(0.9) + math.log(0.5)) / 4
    assert math.isclose(float(difficulty_loss(md, errors, keep, "bce")), plain, rel_tol=1e-6)


def _batch():
    """Logits of 3 classes on 4 x 4 pixels; the top half is labelled with the predicted classes."""
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 4, 4)
    labels = torch.full((1, 4, 4), 255, dtype=torch.uint8)
    labels[:, :2] = logits.argmax(1)[:, :2].to(torch.uint8)
    return logits, labels


def test_region_mode_unlabelled_pixels_do_not_change_the_loss():
    logits, labels = _batch()
    head = DifficultyHead(3, DealConfig().head_spec())
    md = torch.rand(1, 4, 4) * 0.8 + 0.1
    other = md.clone()
    other[:, 2:] = 0.99  # only unlabelled pixels differ
    other_logits = logits.clone()
    other_logits[:, :, 2:] = -logits[:, :, 2:]
    loss = head.loss({"logits": logits, "difficulty": md}, labels)
    assert torch.equal(loss, head.loss({"logits": other_logits, "difficulty": other}, labels))
    n = 8  # labelled pixels, all predicted right: n_right = 8, n_wrong = 0
    w_right = (1 / math.sqrt(n + 1)) / (1 / math.sqrt(n + 1) + 1)
    expected = w_right * -torch.log(1 - md[:, :2]).mean()
    assert torch.isclose(loss, expected.float())
    # the original rule (unlabelled = correct) counts them
    as_correct = DifficultyHead(3, DealConfig(dif_unlabelled="as_correct").head_spec())
    assert not torch.isclose(as_correct.loss({"logits": logits, "difficulty": md}, labels),
                             as_correct.loss({"logits": logits, "difficulty": other}, labels))


def test_void_as_correct_or_excluded():
    labels = torch.tensor([[[0, 5, 255]]], dtype=torch.uint8)  # C = 5: a class, void, unlabelled
    assert loss_mask(labels, 5, "exclude", "as_correct").tolist() == [[[True, True, False]]]
    assert loss_mask(labels, 5, "exclude", "exclude").tolist() == [[[True, False, False]]]
    assert loss_mask(labels, 5, "as_correct", "exclude").tolist() == [[[True, False, True]]]


def test_weight_scales_the_loss_and_detach_stops_its_gradient():
    logits, labels = _batch()
    labels[0, 0, 0] = (labels[0, 0, 0] + 1) % 3  # one wrong pixel
    for detach in (False, True):
        x = logits.clone().requires_grad_(True)
        spec = DealConfig(dif_detach_logits=detach, dif_weight=2.0, pam_grid=(2, 2)).head_spec()
        head = DifficultyHead(3, spec)
        outputs = {"logits": x, "difficulty": head(x, (4, 4))}
        loss = head.loss(outputs, labels)
        half = DifficultyHead(3, {**spec, "weight": 1.0})
        half.load_state_dict(head.state_dict())
        assert torch.isclose(loss, 2 * half.loss(outputs, labels))
        loss.backward()
        assert (x.grad is None or not x.grad.abs().sum()) == detach


def test_config_errors_name_the_key():
    from activeseg.errors import ConfigError

    for bad, key in [({"de_levels": 1}, "de_levels"), ({"sub_ratio": 0.0}, "sub_ratio"),
                     ({"dif_loss": "focal"}, "dif_loss"), ({"protocol": "original"}, "protocol")]:
        with pytest.raises(ConfigError, match=key):
            DealConfig(**bad)
    assert DealConfig(protocol="deal_original").original.labelled_images == [40, 60, 80, 100, 120, 140, 160]
