"""The objects that own what is labelled, and when: grid regions (``LabelledState``) or arbitrary pixel
sets (``PixelLabelledState``, RIPU's squares and single pixels). Both answer ``known(images)``, the
labelled pixels, which is all the oracle needs."""

from __future__ import annotations

import torch

from activeseg.regions import RegionGrid


class LabelledState:
    """``labelled_step[image, rid]``: 0 = not labelled, k = labelled at step k (k >= 1).

    Region ids are the global ids of ``grid`` over the pool's images.

    Args:
        num_images: images in the pool.
        grid: the region grid shared by every image.
        selectable: regions that may be labelled (those holding image pixels; a region of pure padding
            is never offered). Shape: ``[num_images, regions_per_image]`` bool; None: every region.
    """

    def __init__(self, num_images: int, grid: RegionGrid, selectable: torch.Tensor | None = None) -> None:
        self.grid = grid
        self.labelled_step = torch.zeros((num_images, grid.regions_per_image), dtype=torch.int32)
        if selectable is not None and tuple(selectable.shape) != tuple(self.labelled_step.shape):
            raise ValueError(f"selectable has shape {tuple(selectable.shape)}, the pool {tuple(self.labelled_step.shape)}")
        self.selectable = (torch.ones_like(self.labelled_step, dtype=torch.bool) if selectable is None
                           else selectable.to(torch.bool).clone())

    @property
    def num_regions(self) -> int:
        return self.labelled_step.numel()

    @property
    def num_labelled(self) -> int:
        return int((self.labelled_step > 0).sum())

    @property
    def last_step(self) -> int:
        return int(self.labelled_step.max())

    @property
    def num_selectable(self) -> int:
        return int(self.selectable.sum())

    def available(self) -> torch.Tensor:
        """Unlabelled, selectable regions. Shape: ``[num_images, regions_per_image]`` bool."""
        return (self.labelled_step == 0) & self.selectable

    def selectable_ids(self) -> torch.Tensor:
        """Global ids of every region that may be labelled, ascending."""
        return self.selectable.reshape(-1).nonzero().reshape(-1)

    def label(self, gids: torch.Tensor | list[int], step: int) -> None:
        """Marks regions as labelled at ``step``.

        Raises:
            ValueError: a region is already labelled, repeated, or ``step`` goes backwards.
        """
        gids = torch.as_tensor(gids, dtype=torch.long).reshape(-1)
        if step < max(1, self.last_step):
            raise ValueError(f"step {step} is before the last step {self.last_step}; steps start at 1 and grow")
        if gids.unique().numel() != gids.numel():
            raise ValueError("the same region was selected twice in one step")
        flat = self.labelled_step.view(-1)
        if (flat[gids] > 0).any():
            raise ValueError(f"regions {gids[flat[gids] > 0].tolist()} are already labelled")
        if not self.selectable.reshape(-1)[gids].all():
            raise ValueError(f"regions {gids[~self.selectable.reshape(-1)[gids]].tolist()} hold no image pixels")
        flat[gids] = step

    def labelled_ids(self, step: int | None = None) -> torch.Tensor:
        """Global ids labelled (at ``step`` only, if given), ascending."""
        flat = self.labelled_step.view(-1)
        mask = flat > 0 if step is None else flat == step
        return mask.nonzero().reshape(-1)

    def pixel_mask(self, image: int) -> torch.Tensor:
        """Labelled pixels of one image. Shape: ``[H, W]`` bool."""
        rmap = self.grid.region_map()
        return (self.labelled_step[image] > 0)[rmap]

    def known(self, images: torch.Tensor | None = None) -> torch.Tensor:
        """Labelled pixels of ``images`` (default: all). Shape: ``[M, H, W]`` bool."""
        steps = self.labelled_step if images is None else self.labelled_step[images]
        return (steps > 0)[:, self.grid.region_map()]

    def state_dict(self) -> dict:
        return {"labelled_step": self.labelled_step.clone(), "grid": (self.grid.height, self.grid.width,
                                                                      self.grid.region_h, self.grid.region_w)}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["grid"]) != (self.grid.height, self.grid.width, self.grid.region_h, self.grid.region_w):
            raise ValueError(f"saved grid {state['grid']} differs from this run's grid {self.grid}")
        if state["labelled_step"].shape != self.labelled_step.shape:
            raise ValueError("saved state has a different number of images or regions")
        self.labelled_step = state["labelled_step"].clone().to(torch.int32)


class PixelLabelledState:
    """``labelled_round[image, y, x]``: 0 = not labelled, r = labelled in round r (r >= 1), for labels
    that are arbitrary pixel sets, plus the annotation units that labelled them (a square, a pixel).

    Args:
        num_images: images in the pool.
        size: ``(H, W)`` of every image.
    """

    def __init__(self, num_images: int, size: tuple[int, int]) -> None:
        self.labelled_round = torch.zeros((num_images, *size), dtype=torch.int16)
        self.units: list[tuple[int, int, int, int]] = []  # (round, image, y, x) of every annotation unit

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.labelled_round.shape[1:])  # type: ignore[return-value]

    @property
    def num_pixels(self) -> int:
        """Labelled pixels in all."""
        return int((self.labelled_round > 0).sum())

    @property
    def num_units(self) -> int:
        return len(self.units)

    @property
    def last_round(self) -> int:
        return int(self.labelled_round.max()) if self.labelled_round.numel() else 0

    def images_touched(self) -> int:
        """Images with at least one labelled pixel."""
        return int((self.labelled_round > 0).flatten(1).any(1).sum())

    def known(self, images: torch.Tensor | None = None) -> torch.Tensor:
        """Labelled pixels of ``images`` (default: all). Shape: ``[M, H, W]`` bool."""
        rounds = self.labelled_round if images is None else self.labelled_round[images]
        return rounds > 0

    def label(self, image: int, mask: torch.Tensor, rnd: int, centres: torch.Tensor | None = None) -> int:
        """Marks the pixels of ``mask`` (``[H, W]`` bool) of one image as labelled in round ``rnd``,
        recording one annotation unit per row of ``centres`` (``[U, 2]`` (y, x)); returns the pixels added.

        Raises:
            ValueError: a pixel is already labelled, or ``rnd`` goes backwards.
        """
        if rnd < max(1, self.last_round):
            raise ValueError(f"round {rnd} is before the last round {self.last_round}; rounds start at 1 and grow")
        if tuple(mask.shape) != self.size:
            raise ValueError(f"mask has shape {tuple(mask.shape)}, the images {self.size}")
        plane = self.labelled_round[image]
        if (plane[mask] > 0).any():
            raise ValueError(f"image {image}: {int((plane[mask] > 0).sum())} pixels are already labelled")
        plane[mask] = rnd
        for y, x in ([] if centres is None else centres.tolist()):
            self.units.append((rnd, image, int(y), int(x)))
        return int(mask.sum())

    def label_all(self, rnd: int = 1) -> None:
        """Every pixel labelled (the fully labelled reference); no annotation units are counted."""
        self.labelled_round[self.labelled_round == 0] = rnd

    def state_dict(self) -> dict:
        return {"labelled_round": self.labelled_round.clone(), "units": list(self.units)}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["labelled_round"].shape) != tuple(self.labelled_round.shape):
            raise ValueError("saved state has a different number of images or another image size")
        self.labelled_round = state["labelled_round"].clone().to(torch.int16)
        self.units = [tuple(u) for u in state["units"]]
