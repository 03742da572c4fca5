"""Learning sanity: trained with L_seg + L_dif on synthetic data, the difficulty map tells wrongly
predicted pixels from right ones on held-out images."""

import pytest
import torch

from activeseg.data.folder import load_split
from activeseg.data.synthetic import write_synthetic
from activeseg.methods.deal import DealConfig
from activeseg.models import ModelConfig, build_model
from activeseg.train.trainer import TrainConfig, fit, head_metrics
from activeseg.train.sources import ImageSource


@pytest.mark.parametrize("seed", [0, 2])
def test_difficulty_map_separates_errors_on_held_out_images(tmp_path, seed):
    data = write_synthetic(tmp_path / "synth", {"train": 24, "test": 8}, seed=3)
    train = load_split(data, "train", (48, 64), progress=False)
    test = load_split(data, "test", (48, 64), progress=False)
    torch.manual_seed(seed)
    model = build_model(ModelConfig(encoder="tiny", pretrained=False, decoder_width=16), 5,
                        {"difficulty": DealConfig().head_spec()})
    cpu = torch.device("cpu")
    fit(model, ImageSource(train.images, train.labels), None, 5,
        TrainConfig(max_epochs=80, patience=0, batch_size=8, lr=0.01), cpu, torch.Generator().manual_seed(seed),
        progress=False)
    held_out = head_metrics(model, ImageSource(test.images, test.labels), cpu)["difficulty_auroc"]
    assert held_out > 0.65  # 0.5 is chance; measured 0.75-0.76
    assert model.heads["difficulty"].pam.gamma.item() != 0.0  # gamma is learnt
