"""RALIS as a selection policy: observe the model (state on D_S, features of the candidates), then pick
the candidate of highest Q in each pool. Agent training and the test phase share this code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from activeseg.al.candidates import sample_pools
from activeseg.al.oracle import GroundTruthOracle
from activeseg.al.state import LabelledState
from activeseg.al.strategies import SelectionContext, encoded_inputs
from activeseg.config import from_dict, to_dict
from activeseg.errors import ConfigError
from activeseg.fileio import atomic_torch_save, load_checked
from activeseg.methods.ralis.features import (
    BINS,
    DescriptorConfig,
    action_features,
    region_descriptors,
)
from activeseg.methods.ralis.qnet import QueryNetwork
from activeseg.models.segmenter import Segmenter
from activeseg.regions import RegionGrid
from activeseg.train.sources import FeatureSource, ImageSource

AGENT_FORMAT = "activeseg-ralis-agent/1"


@dataclass
class Observation:
    """What the agent sees at one step."""

    state: torch.Tensor
    """Descriptors of every state-set region. Shape: ``[|S|, phi]``."""
    pools: list[np.ndarray]
    """Global region ids of each pool's candidates."""
    candidates: list[torch.Tensor]
    """Features of each pool's candidates. Shape: K x ``[N, phi + 64]``."""


@torch.no_grad()
def image_descriptors(model: Segmenter, source: FeatureSource | ImageSource, images: torch.Tensor,
                      grid: RegionGrid, device: torch.device, desc: DescriptorConfig,
                      batch_size: int = 16) -> torch.Tensor:
    """phi of every region of ``images`` from one eval-mode pass per image (whole image, no crop).

    Shape:
        -> ``[len(images), R, phi]`` float32 on the CPU.
    """
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        feats, size = encoded_inputs(model, source, images[start:start + batch_size], device)
        probs = model.decoder(feats, size).float().softmax(1)
        out.append(region_descriptors(probs, grid, desc.entropy_pool, desc.class_hist_void_bin,
                                      desc.class_hist_normalise).cpu())
    return torch.cat(out)


def observe(model: Segmenter, pool: FeatureSource | ImageSource, state_set: FeatureSource | ImageSource,
            state: LabelledState, revealed: GroundTruthOracle, pools: list[np.ndarray], num_classes: int,
            device: torch.device, desc: DescriptorConfig) -> Observation:
    """The state S_t and the candidate features psi of ``pools`` under the current model.

    psi compares each candidate's predicted class distribution with the ground truth of the regions
    labelled so far in this run (``revealed`` is read only inside them) and with every candidate of
    the step.
    """
    grid = state.grid
    R = grid.regions_per_image
    S = image_descriptors(model, state_set, torch.arange(len(state_set)), grid, device, desc)
    S = S.reshape(-1, S.shape[-1])
    cand = torch.as_tensor(np.concatenate(pools), dtype=torch.long)
    images, where = torch.unique(cand // R, return_inverse=True)
    phi = image_descriptors(model, pool, images, grid, device, desc)[where, cand % R]  # [A, phi]
    class_bins = desc.class_bins(num_classes)
    labelled = state.labelled_ids()
    gt = revealed.region_class_counts(labelled, grid, num_classes)[:, :class_bins].float()
    kl_max = desc.kl_hist_max if desc.kl_hist_range == "fixed" else None
    psi = action_features(phi, gt, class_bins, kl_max)
    return Observation(S, pools, list(torch.split(psi, [len(p) for p in pools])))


class RalisPolicy:
    """A trained query network used greedily: in every pool, the candidate of highest Q.

    Args:
        qnet: the query network.
        desc: how descriptors were built when it was trained (must be the same here).
        num_classes: classes of the segmentation model it was trained with.
    """

    def __init__(self, qnet: QueryNetwork, desc: DescriptorConfig, num_classes: int) -> None:
        self.qnet, self.desc, self.num_classes = qnet, desc, num_classes

    @classmethod
    def load(cls, path: str | Path) -> "RalisPolicy":
        return cls(*load_agent(path))

    @torch.no_grad()
    def q_values(self, obs: Observation) -> list[torch.Tensor]:
        """Q of every candidate of every pool (eval mode: each candidate is scored independently)."""
        self.qnet.eval()
        device = next(self.qnet.parameters()).device
        flat = torch.cat(obs.candidates)[None].to(device)
        q = self.qnet(obs.state[None].to(device), flat)[0].cpu()
        return list(torch.split(q, [len(c) for c in obs.candidates]))

    def select(self, ctx: SelectionContext) -> tuple[torch.Tensor, torch.Tensor]:
        if ctx.state_set is None or ctx.revealed is None:
            raise ConfigError("the ralis strategy needs the state set (D_S) and the labels given so far; "
                              "run it through `activeseg run`/`benchmark`, which provide both")
        regions = len(ctx.state_set) * ctx.state.grid.regions_per_image
        if regions != self.qnet.state_regions:
            raise ConfigError(f"the agent was trained with a state of {self.qnet.state_regions} regions but the "
                              f"state set has {regions}; use the same state images (state_images) as in training")
        model_classes = ctx.model.decoder.classifier.out_channels
        if model_classes != self.num_classes:
            raise ConfigError(f"the agent was trained for {self.num_classes} classes, the model has {model_classes}")
        self.qnet.to(ctx.device)
        pools = sample_pools(ctx.state.available(), ctx.k, ctx.n, ctx.rng)
        obs = observe(ctx.model, ctx.pool, ctx.state_set, ctx.state, ctx.revealed, pools, self.num_classes,
                      ctx.device, self.desc)
        q = self.q_values(obs)
        picked = torch.tensor([int(p[int(qi.argmax())]) for p, qi in zip(pools, q)], dtype=torch.long)
        return picked, torch.stack([qi.max() for qi in q]).double()


def save_agent(path: Path, qnet: QueryNetwork, desc: DescriptorConfig, num_classes: int, extra: dict) -> None:
    atomic_torch_save({"format": AGENT_FORMAT, "qnet": qnet.state_dict(), "state_regions": qnet.state_regions,
                       "phi_dim": qnet.phi_dim, "kl_dim": qnet.kl_dim, "first_relu": qnet.first_relu,
                       "descriptors": to_dict(desc), "num_classes": num_classes, "extra": extra}, Path(path))


def load_agent(path: str | Path) -> tuple[QueryNetwork, DescriptorConfig, int]:
    """The query network, descriptor options and class count of an agent checkpoint."""
    path = Path(path)
    ckpt = load_checked(path, AGENT_FORMAT, "agent checkpoint not found; train one with `activeseg agent train "
                        "CONFIG` (it writes agent_last.pt and agent_best.pt in its out folder)",
                        "not an activeseg RALIS agent")
    if ckpt["kl_dim"] != 2 * BINS:
        raise ConfigError(f"{path}: the agent uses {ckpt['kl_dim']} KL-histogram features; this version builds {2 * BINS}")
    qnet = QueryNetwork(ckpt["state_regions"], ckpt["phi_dim"], ckpt["kl_dim"], ckpt["first_relu"])
    qnet.load_state_dict(ckpt["qnet"])
    return qnet, from_dict(DescriptorConfig, ckpt["descriptors"]), ckpt["num_classes"]
