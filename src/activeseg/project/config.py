"""A labelling project's settings: the model, the active-learning options, exports and the import policy.

The keys are those of an experiment config (``configs/*.yaml``) where they mean the same thing, so a
simulated project can run with the settings of an ``activeseg run`` and reach the same labelled state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from activeseg.al.loop import ALConfig
from activeseg.config import DataConfig, Positive
from activeseg.errors import ConfigError
from activeseg.formats.crops import ImportPolicy
from activeseg.models.segmenter import ModelConfig
from activeseg.pipeline import default_cache_dir
from activeseg.train.trainer import TrainConfig

EXPORT_FORMATS = ("labelstudio", "cvat_xml", "cvat_segmask", "crops")


@dataclass(frozen=True)
class ExportConfig:
    """What `activeseg project query` writes for each round (spec formats.md §3, §4, §7)."""

    formats: tuple[str, ...] = ("labelstudio", "cvat_xml", "cvat_segmask", "crops")
    """Any of labelstudio (tasks JSON + labelling config), cvat_xml (CVAT for images 1.1 zip with the
    images), cvat_segmask (Segmentation mask 1.1 zip holding the pre-annotations) and crops (the task images
    as PNG files, written whatever is chosen: the other formats and the import read them)."""
    mode: Literal["crop", "full_image"] = "crop"
    """crop: each query is its own image, the query box grown by crop_margin (default); full_image: the
    whole image with the box highlighted (annotators may paint outside; clipped on import)."""
    crop_margin: float = 0.25
    """Context added around the query box on each side, as a fraction of the box size."""
    pre_annotations: bool = True
    """Send the model's prediction inside each query box along, so annotators correct rather than paint."""
    labelling_tool: Literal["brush", "polygon"] = "brush"
    """Label Studio labelling config: BrushLabels or PolygonLabels."""

    def __post_init__(self) -> None:
        bad = [f for f in self.formats if f not in EXPORT_FORMATS]
        if bad or not self.formats:
            raise ConfigError(f"export.formats {list(self.formats)}: choose from {', '.join(EXPORT_FORMATS)}")
        if not 0 <= self.crop_margin <= 2:
            raise ConfigError(f"export.crop_margin is {self.crop_margin}; use a fraction of the box in [0, 2]")


@dataclass(frozen=True)
class ImportConfig(ImportPolicy):
    """How answers become labels (spec formats.md §2): the import contract's policy, and how brushes are read."""

    alpha_threshold: int = 1
    """Label Studio brush pixels with at least this alpha count as painted."""


@dataclass(frozen=True)
class ProjectConfig:
    """Settings of a labelling project (`activeseg project init --config FILE`)."""

    data: DataConfig = field(default_factory=DataConfig)
    """Working resolution (height, width); images are stretched to it (data.dataset is not read)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    al: ALConfig = field(default_factory=lambda: ALConfig(strategy="random"))
    """Scoring and training options (strategy: the default of `project query`; step_train: the fine-tuning
    after each round; final_train, final_init, final_include_start: `project train`). Budgets are not read."""
    start_train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=40, patience=8))
    """Training of the start model on fully labelled images given at init (if any)."""
    start_seed: int = 0
    start_early_stopping: bool = True
    """Keep the start model's best epoch on the validation folder (when the project has one)."""
    region_rows: Positive = 4
    region_cols: Positive = 6
    seed: int = 20
    """Round r draws its randomness from (seed, r), as step r of `activeseg run --seed` does."""
    query_model: Literal["trained", "fine_tuned"] = "trained"
    """Model that scores a round and makes its pre-annotations: 'trained', the model of `project train` when
    it has learned from every answered round (else the fine-tuned one); 'fine_tuned', the start model
    fine-tuned one epoch per answered round, as `activeseg run` does (a simulated project then selects what
    the run selects)."""
    device: str = "auto"
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    """On-disk encoder feature cache (None: memory only)."""
    export: ExportConfig = field(default_factory=ExportConfig)
    imports: ImportConfig = field(default_factory=ImportConfig)

    def __post_init__(self) -> None:
        if self.data.fit != "stretch":
            raise ConfigError("projects stretch every image to the working size (data.fit: stretch); query boxes are "
                              "mapped to each image's own pixels")
