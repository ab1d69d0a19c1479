"""The image pool of CycleGAN (Shrivastava et al. 2017, as used by Zhu et al. 2017): a history of generated images.

The discriminator is updated on a mix of the newest fakes and older ones, which damps oscillation. Behaviour of the
reference ``ImagePool`` (junyanz/pytorch-CycleGAN-and-pix2pix), image by image: while fewer than ``size`` images are
stored, store the new image and return it; afterwards, with probability 1/2 return a stored image chosen uniformly
and put the new one in its place, else return the new image. ``size = 0`` returns the input unchanged.

Unlike the reference (Python's ``random``), the draws come from the torch RNG, so a method running this inside its
own RNG stream stays reproducible; the stored images are part of :meth:`ImagePool.state_dict` so a checkpoint
resumes identically.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class ImagePool:
    """A pool of up to ``size`` generated images (see the module docstring)."""

    def __init__(self, size: int = 50) -> None:
        if size < 0:
            raise ValueError(f"ImagePool size must be >= 0, got {size}")
        self.size = size
        self.images: list[Tensor] = []

    def query(self, images: Tensor) -> Tensor:
        """``(N, C, H, W)`` new fakes -> ``(N, C, H, W)`` fakes for the discriminator (detached)."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) > 0.5:
                i = int(torch.randint(0, self.size, ()))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def __len__(self) -> int:
        return len(self.images)

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "images": torch.cat(self.images, 0).cpu() if self.images else None}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"ImagePool: checkpoint pool size {state['size']} != {self.size}")
        images = state["images"]
        self.images = [] if images is None else [im.unsqueeze(0).to(device) for im in images]
