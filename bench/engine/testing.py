"""The method contract as reusable checks, so a plugin author tests a method in one line.

    from colorbench.engine.testing import check_method
    check_method(MyMethod)            # raises AssertionError naming the failed check; returns the skipped ones

Each check is a plain function ``check_xxx(cls, images)`` that raises :class:`AssertionError` (with the reason)
when the method breaks the contract of :class:`colorbench.methods.Method`, and :class:`ContractSkip` when the
check does not apply (e.g. no loss to check for a method with nothing to train). :data:`CONTRACT_CHECKS` lists
them by name; colorbench's own tests (``tests/test_methods.py``) parametrize over it and every registered method.
The checks run the method's ``quick`` preset on the CPU on :func:`smooth_images` (eight 32x32 images), so they
take seconds. pytest is not needed.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any, Callable

import torch

from colorbench.core.color import grey_to_lightness, rgb_to_grey, rgb_to_lab
from colorbench.core.grey import Grey
from colorbench.datasets.base import ImageSet

SIZE = 32

__all__ = ["CONTRACT_CHECKS", "ContractSkip", "batches", "build", "check_method", "smooth_images", "snapshot",
           "trained"]


class ContractSkip(Exception):
    """A check that does not apply to this method (the reason is the message)."""


# --- synthetic data and helpers ----------------------------------------------------------------------------------
#: The grey convention of the checks' batches: the one every method's config has unless a run sets another.
CHECK_GREY = Grey.BT601


def smooth_images(n: int, size: int = SIZE, seed: int = 0) -> ImageSet:
    """Random but structured colour images: a linear blend of two random colours along a random direction,
    plus a smooth sinusoidal pattern in a third colour. Per-pixel masks (for methods with ``card.needs_masks``):
    class 1 where the blend is past its middle, else 0."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    images, masks = [], []
    for _ in range(n):
        angle = float(torch.rand(1, generator=g)) * 2 * math.pi
        freq = float(torch.rand(1, generator=g)) * 3 + 1
        t = math.cos(angle) * x + math.sin(angle) * y
        t = (t - t.min()) / (t.max() - t.min())
        masks.append((t > 0.5).to(torch.uint8))
        wave = 0.5 + 0.5 * torch.sin(2 * math.pi * freq * x + angle) * torch.cos(2 * math.pi * freq * y)
        c0, c1, c2 = torch.rand(3, 3, 1, 1, generator=g).unbind(0)
        images.append(0.7 * (c0 * (1 - t) + c1 * t) + 0.3 * c2 * wave)
    rgb = (torch.stack(images).clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageSet(rgb, torch.zeros(n, dtype=torch.long), [f"smooth{i}" for i in range(n)], ["synthetic"],
                    masks=torch.stack(masks), mask_class_names=["first half", "second half"])


def batches(images: ImageSet, n: int, batch_size: int = 4, seed: int = 0):
    """``n`` shuffled batches (the same ones for the same seed)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < n:
        out.extend(images.batches(batch_size, shuffle=True, generator=g, grey_convention=CHECK_GREY))
    return out[:n]


def _cls(method: Any) -> type:
    if isinstance(method, str):
        from colorbench.methods import METHODS

        return METHODS.get(method)
    return method


def build(method: Any, seed: int = 0, **overrides: Any):
    """The ``quick`` preset of a method class (or registered name) on the CPU."""
    return _cls(method).from_preset("quick", device="cpu", seed=seed, **overrides)


def trained(method: Any, images: ImageSet, steps: int = 2, seed: int = 0):
    m = build(method, seed)
    m.fit_start(images)  # as the runner does for every method
    for batch in batches(images, steps):
        m.train_step(batch)
    return m


def snapshot(method) -> dict[str, torch.Tensor]:
    return {f"{k}.{n}": t.detach().clone() for k, net in method.networks().items() for n, t in net.state_dict().items()}


def _raises(exc_type: type[BaseException], pattern: str, fn: Callable[[], Any], what: str) -> None:
    try:
        fn()
    except exc_type as exc:
        if not re.search(pattern, str(exc)):
            raise AssertionError(f"{what}: raised {type(exc).__name__}({exc}) whose message does not match "
                                 f"{pattern!r}") from None
        return
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{what}: expected {exc_type.__name__} matching {pattern!r}, got "
                             f"{type(exc).__name__}: {exc}") from None
    raise AssertionError(f"{what}: expected {exc_type.__name__} matching {pattern!r}, nothing was raised")


def _check(cond: Any, message: str) -> None:
    if not cond:
        raise AssertionError(message)


# --- the checks -----------------------------------------------------------------------------------------------
def check_card_and_presets(cls: type, images: ImageSet | None = None, *, provenance: bool = False) -> None:
    """A card named as registered, ``paper`` and ``quick`` presets, a known colour space; ``provenance``
    (colorbench's built-in methods) also requires the seed file and the choices made."""
    cls = _cls(cls)
    from colorbench.methods import METHODS

    name = cls.card.name
    _check(name in METHODS and METHODS.get(name) is cls,
           f"{cls.__name__}.card.name is {name!r}, which is not the name it is registered under")
    _check({"paper", "quick"} <= set(cls.presets), f"{name}: presets {sorted(cls.presets)} lack 'paper' or 'quick'")
    _check(cls.card.color_space in ("lab", "rgb", "none"),
           f"{name}: card.color_space {cls.card.color_space!r} is not lab, rgb or none")
    for preset in cls.presets:
        config = cls.make_config(preset)
        _check(config.grey_convention == "bt601" and config.batch_size >= 1,
               f"{name}: preset {preset!r} must keep grey_convention 'bt601' (the runner sets it) and batch_size >= 1")
    if cls.card.trainable:
        _check(cls.card.paper, f"{name}: card.paper is empty (say which paper the method implements)")
        if provenance:
            _check(cls.card.source and cls.card.choices, f"{name}: card.source and card.choices must be set")


def check_unknown_preset_and_option(cls: type, images: ImageSet | None = None) -> None:
    """A misspelt preset or option, or a wrong grey convention, is a clear ValueError."""
    cls = _cls(cls)
    _raises(ValueError, r"no preset 'papr'.*paper", lambda: cls.make_config("papr"), "make_config('papr')")
    _raises(ValueError, r"unknown option\(s\) \['learning_rat'\]", lambda: cls.make_config("quick", learning_rat=1.0),
            "make_config(learning_rat=...)")
    _raises(ValueError, "grey_convention", lambda: cls.make_config("quick", grey_convention="luma"),
            "make_config(grey_convention='luma')")


def check_paper_preset_builds(cls: type, images: ImageSet | None = None) -> None:
    """The paper preset builds (on the CPU) and every network has parameters."""
    info = _cls(cls).describe("paper")
    _check(info["preset"] == "paper", "describe('paper') did not describe the paper preset")
    _check(all(n > 0 for n in info["parameters"].values()), f"a network has no parameters: {info['parameters']}")


def check_train_steps_give_finite_losses(cls: type, images: ImageSet) -> None:
    """Three steps give named finite float losses and change a parameter (nothing to train: empty dicts)."""
    method = build(cls)
    if not method.card.trainable:
        batch = next(images.batches(4, grey_convention=CHECK_GREY))
        _check(method.networks() == {} and method.train_step(batch) == {},
               f"{method.card.name}: card.trainable is False but it has networks or returns losses")
        raise ContractSkip(f"{method.card.name}: card.trainable is False (nothing to train)")
    before = snapshot(method)
    for batch in batches(images, 3):
        losses = method.train_step(batch)
        _check(losses and all(isinstance(v, float) and math.isfinite(v) for v in losses.values()),
               f"{method.card.name}.train_step must return named finite Python floats, got {losses}")
    after = snapshot(method)
    _check(any(not torch.equal(before[k], after[k]) for k in before), "training changed no parameter")


def check_non_finite_loss_raises(cls: type, images: ImageSet) -> None:
    """NaN weights make train_step raise FloatingPointError('non-finite loss ...')."""
    method = build(cls)
    if not method.card.trainable:
        raise ContractSkip(f"{method.card.name}: card.trainable is False (no loss to check)")
    with torch.no_grad():
        for net in method.networks().values():
            for p in net.parameters():
                p.fill_(float("nan"))
    batch = next(images.batches(4, grey_convention=CHECK_GREY))
    _raises(FloatingPointError, "non-finite loss", lambda: method.train_step(batch),
            f"{method.card.name}.train_step with NaN weights")


def check_output_shape_range_and_lightness(cls: type, images: ImageSet) -> None:
    """colorize gives (N, 3, H, W) float32 in [0, 1] on the input's device and keeps the grey's lightness."""
    method = trained(cls, images)
    name = method.card.name
    batch = images.make_batch(torch.arange(len(images)), grey_convention=CHECK_GREY)
    out = method.colorize(batch.gray)
    size = images.image_size
    _check(tuple(out.shape) == (len(images), 3, *size), f"{name}.colorize returned shape {tuple(out.shape)}, "
                                                         f"expected {(len(images), 3, *size)}")
    _check(out.dtype == torch.float32 and out.device == batch.gray.device,
           f"{name}.colorize returned {out.dtype} on {out.device}, expected float32 on {batch.gray.device}")
    _check(out.min() >= 0 and out.max() <= 1, f"{name}.colorize values in [{out.min():.3g}, {out.max():.3g}], not [0, 1]")
    luma_error = (rgb_to_grey(out, CHECK_GREY) - batch.gray).abs()
    if method.card.color_space == "none":
        _check(luma_error.max() < 1e-6, f"{name}: colour space 'none' must return R = G = B = grey")
    elif method.card.color_space == "lab":
        # The L* of the grey is kept, but BT.601 luma is a weighted sum of gamma-encoded values, not a function
        # of L*, and out-of-gamut colours are clipped, so luma is only close. Measured mean |Δluma| of
        # grey_ab_to_rgb(gray, ab) for uniform random grey and ab uniform in ±33: 0.019; in ±55: 0.036; trained
        # quick models: < 0.003. Bound: 0.03 (≈ 8 grey levels).
        _check(luma_error.mean() < 0.03, f"{name}: mean |luma(output) - grey| = {luma_error.mean():.4f} >= 0.03")
        # Where nothing was clipped, Lab -> sRGB -> Lab is exact up to float32 rounding: L* must equal the
        # grey's L* (the other grey convention would be off by up to 3.4 L* units).
        inside = ((out > 1e-3) & (out < 1 - 1e-3)).all(dim=1, keepdim=True)
        _check(inside.float().mean() > 0.5, f"{name}: more than half of the output pixels are clipped")
        dL = (rgb_to_lab(out)[:, :1] - grey_to_lightness(batch.gray, CHECK_GREY))[inside].abs()
        _check(dL.max() < 0.05, f"{name}: a Lab method changed L* by up to {dL.max():.3f} (bound 0.05)")


def check_reproducible_under_seed(cls: type, images: ImageSet) -> None:
    """The same seed gives the same initial weights, losses and outputs; another seed changes the outputs."""
    cls = _cls(cls)
    data = batches(images, 3)
    gray = images.make_batch(torch.arange(len(images)), grey_convention=CHECK_GREY).gray
    runs, inits = [], []
    for seed in (7, 7, 8):
        method = build(cls, seed)
        inits.append(snapshot(method))
        method.fit_start(images)
        losses = [method.train_step(b) for b in data]
        runs.append((losses, method.colorize(gray)))
    _check(all(torch.equal(inits[0][k], inits[1][k]) for k in inits[0]), "same seed, different initial weights")
    _check(runs[0][0] == runs[1][0], "same seed, different losses")
    _check(torch.equal(runs[0][1], runs[1][1]), "same seed, different colorizations")
    if cls.card.trainable:
        _check(not torch.equal(runs[0][1], runs[2][1]), "the seed has no effect")


def check_state_dict_round_trip(cls: type, images: ImageSet) -> None:
    """A checkpoint (plain tensors and numbers) restores the outputs and the next training step exactly."""
    method = trained(cls, images, steps=2, seed=0)
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    fresh = build(cls, seed=123)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    gray = images.make_batch(torch.arange(len(images)), grey_convention=CHECK_GREY).gray
    _check(torch.equal(fresh.colorize(gray), method.colorize(gray)), "restored method colorizes differently")
    nxt = batches(images, 1, seed=5)[0]
    _check(fresh.train_step(nxt) == method.train_step(nxt),
           "training does not resume identically (optimizer state or the method's RNG stream not in the checkpoint)")
    _raises(ValueError, "checkpoint is for method",
            lambda: fresh.load_state_dict({**method.state_dict(), "method": "some-other-method"}),
            "load_state_dict of another method's checkpoint")


def check_colorize_is_pure(cls: type, images: ImageSet) -> None:
    """colorize changes no weight, no train/eval mode, not the global RNG, and needs no grad (both modes)."""
    for train_mode in (True, False):
        method = trained(cls, images)
        method.set_train(train_mode)
        modes = {k: net.training for k, net in method.networks().items()}
        before = snapshot(method)
        rng = torch.get_rng_state()
        gray = images.make_batch(torch.arange(len(images)), grey_convention=CHECK_GREY).gray
        first, second = method.colorize(gray), method.colorize(gray)
        where = f"{method.card.name}.colorize (train mode {train_mode})"
        _check(torch.equal(first, second), f"{where}: two calls gave different outputs")
        after = snapshot(method)
        _check(before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before),
               f"{where} changed the weights")
        _check({k: net.training for k, net in method.networks().items()} == modes, f"{where} changed train/eval mode")
        _check(torch.equal(torch.get_rng_state(), rng), f"{where} drew from the global RNG")
        _check(not first.requires_grad, f"{where} returned a tensor that requires grad")


def check_colorize_rejects_bad_input(cls: type, images: ImageSet) -> None:
    """Integer, 3-channel or 0-255 grey inputs are clear errors."""
    method = build(cls)
    gray = images.make_batch(torch.arange(2), grey_convention=CHECK_GREY).gray
    _raises(TypeError, "floating-point", lambda: method.colorize((gray * 255).to(torch.uint8)), "colorize(uint8)")
    _raises(ValueError, r"\(N, 1, H, W\)", lambda: method.colorize(gray.expand(-1, 3, -1, -1)), "colorize(3 channels)")
    _raises(ValueError, r"\[0, 1\]", lambda: method.colorize(gray * 255), "colorize(values in 0-255)")


#: name -> check, in the order :func:`check_method` runs them.
CONTRACT_CHECKS: dict[str, Callable[..., None]] = {
    "card_and_presets": check_card_and_presets,
    "unknown_preset_and_option": check_unknown_preset_and_option,
    "paper_preset_builds": check_paper_preset_builds,
    "train_steps_give_finite_losses": check_train_steps_give_finite_losses,
    "non_finite_loss_raises": check_non_finite_loss_raises,
    "output_shape_range_and_lightness": check_output_shape_range_and_lightness,
    "reproducible_under_seed": check_reproducible_under_seed,
    "state_dict_round_trip": check_state_dict_round_trip,
    "colorize_is_pure": check_colorize_is_pure,
    "colorize_rejects_bad_input": check_colorize_rejects_bad_input,
}


def check_method(method: Any, images: ImageSet | None = None, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Run every contract check on a method class (or registered name); raise AssertionError on the first
    failure, naming the check. Returns the checks that did not apply, with the reason.

    Args:
        method: the Method subclass (registered with ``@register_method``) or its registry name.
        images: test images (default: :func:`smooth_images` (8), 32x32). Give images of the size your quick
            preset needs if it cannot run on 32x32.
        skip: names of checks (keys of :data:`CONTRACT_CHECKS`) not to run (e.g. ``"paper_preset_builds"`` for a
            paper preset too large for the machine).
    """
    cls = _cls(method)
    images = images if images is not None else smooth_images(8)
    unknown = sorted(set(skip) - set(CONTRACT_CHECKS))
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; checks are {list(CONTRACT_CHECKS)}")
    skipped: dict[str, str] = {}
    for name, check in CONTRACT_CHECKS.items():
        if name in skip:
            skipped[name] = "skipped by the caller"
            continue
        try:
            check(cls, images)
        except ContractSkip as why:
            skipped[name] = str(why)
        except AssertionError as exc:
            raise AssertionError(f"{cls.__name__} ({getattr(cls.card, 'name', '?')}) fails the method contract "
                                 f"check {name!r}: {exc}") from exc
    return skipped
