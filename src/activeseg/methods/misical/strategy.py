"""The ``misical`` strategy: a trained class policy (``activeseg misical train``) choosing pool regions from
fixed region embeddings, computed once per pool (spec ``misical.md`` section 5.1).

- ``oneshot_topB`` (default): Q(s_0, a) of every pool region is computed once; each step takes the k best
  regions of that static ranking that are still available, so the regions labelled by the end of a run
  are exactly the top B of the ranking (B = the run's last budget), whatever the step size.
- ``rollout``: each pick is the best of ``pool_size`` random available regions, with sigma (mean
  embedding, t / episode_len) computed from every region labelled so far in the run.

The embeddings come from the run's start model (``SelectionContext.start_model``), never from the model
fine-tuned during the run, through ``EmbeddingCache``: the first selection computes them, later ones (and
later runs on the same pool in the same process) reuse them. The policy file fixes the class, the
embedding kind and the model whose features it was trained on; a run whose options or start model differ
is refused. The loop's ``selection`` and ``candidates_per_pool`` are not read.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch

from activeseg.al.strategies import SelectionContext
from activeseg.errors import ConfigError
from activeseg.methods.misical.config import IMAGE_UNIT, MISSING_POLICY, MisicalConfig
from activeseg.methods.misical.embeddings import EmbeddingCache, Source, model_fingerprint
from activeseg.methods.misical.policy import ClassQNet, initial_q, load_policy, rollout_scored, top_available
from activeseg.models.segmenter import Segmenter
from activeseg.regions import RegionGrid
from activeseg.train.sources import FeatureSource

log = logging.getLogger(__name__)

#: In memory, for the process: runs on the same pool and start model share one computation.
SHARED_EMBEDDINGS = EmbeddingCache()


def deployment_options(cfg: MisicalConfig, meta: dict, path: Path | str) -> MisicalConfig:
    """The options a policy is deployed with: those it was trained with (class, embeddings, episode_len,
    pool_size), and ``deploy``/``policy`` from ``cfg``.

    Raises:
        ConfigError: ``cfg`` names another class, or other embeddings (encoder, add_position, unit), than
            the policy file.
    """
    trained: MisicalConfig = meta["config"]
    if cfg.target_class is not None and cfg.target_class != meta["target_class"]:
        raise ConfigError(f"misical.target_class / --target-class is {cfg.target_class!r} but the policy {path} was "
                          f"trained for {meta['target_class']!r}; the policy file fixes the class: give the policy of "
                          f"{cfg.target_class!r} (activeseg misical train ... --target-class {cfg.target_class}) or "
                          "drop the option")
    for key in ("encoder", "add_position", "unit"):
        if getattr(cfg, key) != getattr(trained, key):
            raise ConfigError(f"al.misical.{key} is {getattr(cfg, key)!r} but the policy {path} was trained with "
                              f"{getattr(trained, key)!r}; set al.misical.{key}: {getattr(trained, key)} (a policy reads "
                              "only the embeddings it was trained on)")
    return replace(trained, deploy=cfg.deploy, policy=cfg.policy)


def pool_embeddings(kind: str, source: Source, grid: RegionGrid, model: Segmenter, device: torch.device,
                    add_position: bool, cache: EmbeddingCache | None = None,
                    images: torch.Tensor | None = None) -> torch.Tensor:
    """The fixed embedding of every region of a pool, one row per global region id (``image * R + rid``),
    from ``cache`` (default: ``SHARED_EMBEDDINGS``).

    Shape:
        ``[N * R, d]`` float32 (CPU).
    """
    if kind == "handcrafted" and images is None and isinstance(source, FeatureSource):
        raise ConfigError("misical.encoder 'handcrafted' needs the pool's pixels, but the pool holds cached encoder "
                          "features; use encoder seg_start or imagenet, or cache_dir: null (the pool then keeps its "
                          "images)")
    cache = cache if cache is not None else SHARED_EMBEDDINGS
    emb = cache.get(kind, source, grid, model, device, add_position, images=images)  # [N, R, d]
    return emb.reshape(-1, emb.shape[-1])  # [N * R, d], image-major


class MisicalPolicy:
    """A trained class policy selecting pool regions (strategy ``misical``).

    Args:
        qnet: the trained Q-network.
        meta: the policy file's meta (``load_policy``).
        cfg: deployment options (``deployment_options``).
        cache: where embeddings are remembered (default: ``SHARED_EMBEDDINGS``, in memory, for the process).
        images: uint8 pool images, for 'handcrafted' embeddings of a pool held as cached features.
    """

    def __init__(self, qnet: ClassQNet, meta: dict, cfg: MisicalConfig,
                 cache: EmbeddingCache | None = None, images: torch.Tensor | None = None) -> None:
        self.qnet, self.meta, self.cfg, self.cache, self.images = qnet, meta, cfg, cache, images
        self._pool: Source | None = None
        self._embeddings: torch.Tensor | None = None
        self._q0: torch.Tensor | None = None

    @classmethod
    def load(cls, cfg: MisicalConfig, cache: EmbeddingCache | None = None,
             images: torch.Tensor | None = None) -> "MisicalPolicy":
        """The policy of ``cfg.policy``, checked against ``cfg`` (see ``deployment_options``)."""
        if cfg.policy is None:
            raise ConfigError(MISSING_POLICY)
        if cfg.unit != "region":
            raise ConfigError(IMAGE_UNIT)
        qnet, meta = load_policy(cfg.policy)
        return cls(qnet, meta, deployment_options(cfg, meta, cfg.policy), cache, images)

    @property
    def target_class(self) -> str:
        return self.meta["target_class"]

    def embeddings(self, ctx: SelectionContext) -> torch.Tensor:
        """The pool's region embeddings (computed on the first call for this pool, then remembered).

        Shape: ``[N * R, d]``.
        """
        if self._embeddings is not None and self._pool is ctx.pool:
            return self._embeddings
        model = ctx.start_model if ctx.start_model is not None else ctx.model
        kind = self.cfg.encoder
        expected = self.meta.get("embedding_model")
        if expected is not None and model_fingerprint(kind, model) != expected:
            raise ConfigError(f"the policy {self.cfg.policy} was trained on {kind!r} embeddings of another model than "
                              "this run's start model; train the policy with the same experiment (data, model, start "
                              "images and start training) as the run: activeseg misical train CONFIG --target-class "
                              f"{self.target_class}")
        emb = pool_embeddings(kind, ctx.pool, ctx.state.grid, model, ctx.device, self.cfg.add_position, self.cache,
                              self.images)
        if emb.shape[-1] != self.qnet.embed_dim:
            raise ConfigError(f"the pool's embeddings have {emb.shape[-1]} dimensions but the policy {self.cfg.policy} "
                              f"reads {self.qnet.embed_dim}; train it with this experiment's model and options")
        self.qnet.to(ctx.device)
        self._pool, self._embeddings, self._q0 = ctx.pool, emb, None
        return emb

    def initial_values(self, ctx: SelectionContext) -> torch.Tensor:
        """Q(s_0, a) of every pool region (computed once per pool). Shape: ``[N * R]``."""
        emb = self.embeddings(ctx)
        if self._q0 is None:
            self._q0 = initial_q(self.qnet, emb, self.cfg.episode_len)
        return self._q0

    def choose(self, ctx: SelectionContext, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` available regions by the deployment mode, and their Q values (float64)."""
        available = ctx.state.available().reshape(-1)
        if self.cfg.deploy == "oneshot_topB":
            q0 = self.initial_values(ctx)
            picked = top_available(q0, available, k)
            return picked, q0[picked].double()
        emb = self.embeddings(ctx)
        return rollout_scored(self.qnet, emb, available, k, self.cfg.pool_size, self.cfg.episode_len, ctx.rng,
                              acquired=ctx.state.labelled_ids())

    def select(self, ctx: SelectionContext) -> tuple[torch.Tensor, torch.Tensor]:
        return self.choose(ctx, ctx.k)
