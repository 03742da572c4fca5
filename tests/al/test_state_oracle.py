import pytest
import torch

from activeseg.al.oracle import GroundTruthOracle
from activeseg.al.state import LabelledState
from activeseg.regions import RegionGrid

GRID = RegionGrid(4, 6, 2, 3)  # 2 x 2 regions of 2 x 3 pixels


def test_labelled_step_records_when():
    s = LabelledState(3, GRID)
    s.label([0, 5], step=1)
    s.label(torch.tensor([11]), step=2)
    assert s.num_labelled == 3 and s.last_step == 2
    assert s.labelled_step.tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 2]]
    assert s.labelled_ids().tolist() == [0, 5, 11] and s.labelled_ids(step=2).tolist() == [11]
    assert int(s.available().sum()) == 9


@pytest.mark.parametrize("gids, step, message", [([0], 2, "already labelled"), ([3, 3], 2, "twice"),
                                                 ([4], 0, "before the last step")])
def test_invalid_labelling_rejected(gids, step, message):
    s = LabelledState(2, GRID)
    s.label([0], step=1)
    with pytest.raises(ValueError, match=message):
        s.label(gids, step)


def test_state_dict_round_trip():
    s = LabelledState(2, GRID)
    s.label([1, 6], 1)
    t = LabelledState(2, GRID)
    t.load_state_dict(s.state_dict())
    assert torch.equal(s.labelled_step, t.labelled_step)
    with pytest.raises(ValueError, match="grid"):
        LabelledState(2, RegionGrid(4, 6, 4, 3)).load_state_dict(s.state_dict())


def test_oracle_reveals_only_labelled_regions():
    labels = torch.arange(48, dtype=torch.uint8).reshape(2, 4, 6) % 7  # values 0..6, 6 = void if C = 6
    s = LabelledState(2, GRID)
    s.label([1, 6], 1)  # image 0 region 1 (rows 0-1, cols 3-5); image 1 region 2 (rows 2-3, cols 0-2)
    part = GroundTruthOracle(labels).partial_labels(s)
    assert torch.equal(part[0, :2, 3:], labels[0, :2, 3:]) and torch.equal(part[1, 2:, :3], labels[1, 2:, :3])
    assert int((part != 255).sum()) == 12 and torch.equal(s.pixel_mask(0), part[0] != 255)
    hist = GroundTruthOracle(labels).class_histogram(s, num_classes=6)
    assert hist.sum() == 12 and hist.shape == (7,)
