"""Checks that tie a method preset to the scale it was defined on (image size, dataset).

A paper-scale preset declares, in its method's ``preset_scales``, the image size and dataset the paper used
(:class:`~colorbench.methods.base.PresetScale`). :func:`check_preset_image_size` is what the runner calls before
training a method: a ``paper`` preset trained on 32-pixel patches is not the paper's model, so the run stops for
that method (a failed row) with a message saying what to pass.
"""

from __future__ import annotations

from typing import Sequence

from colorbench.methods.base import Method


class PresetScaleError(ValueError):
    """A run's images do not have the size a preset was defined at."""


def check_preset_image_size(cls: type[Method], preset: str, image_size: Sequence[int], dataset: str = "") -> None:
    """Raise :class:`PresetScaleError` unless ``image_size`` (H, W) is a size ``preset`` was defined at.

    Presets without a declared scale (``quick``, overlays, presets of methods with no paper size) pass, as do
    those whose paper gives no size (``any_size``).

    Args:
        cls: the method class.
        preset: the preset name (``"a+b"`` compositions: the first part that declares a scale counts).
        image_size: the run's image size ``(H, W)``.
        dataset: the run's dataset name (only used in the message).
    """
    scale = cls.preset_scale(preset)
    if scale is None or scale.any_size:
        return
    h, w = int(image_size[0]), int(image_size[1])
    allowed = scale.allowed_sizes()
    if h == w and h in allowed:
        return
    defined = ", ".join(f"{side}×{side} on {name}" for name, side in scale.sizes.items())
    sizes = " or ".join(f"--image-size {side}" for side in allowed)
    on = f" ({dataset})" if dataset else ""
    raise PresetScaleError(
        f"method {cls.card.name!r} preset {preset!r} was defined on {defined} ({scale.source}); this run's images "
        f"are {h}×{w}{on}: pass {sizes} (with that dataset, e.g. --dataset {next(iter(scale.sizes))}), or use "
        f"--preset quick for small images"
    )

