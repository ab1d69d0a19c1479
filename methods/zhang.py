"""Zhang et al.'s colorizers: ``zhang-eccv16`` (classification over quantised ab, trainable, or the authors' released
weights) and ``zhang-siggraph17`` (the authors' released automatic model, inference only).

``zhang-eccv16`` is Zhang, Isola, Efros, "Colorful Image Colorization" (ECCV 2016) — the model Fabbri & Islam
(seed 003, §3.1) adopt, with its own loss, so it is also that report's classification baseline:

* colours are quantised into the Q = 313 in-gamut bins of a grid of step 10 in ab (:data:`ZHANG_AB_BINS`);
* the target of each pixel is a soft encoding: its 5 nearest bins weighted by a Gaussian of σ = 5 (paper §2.1);
* the multinomial cross-entropy is weighted per pixel by class rebalancing: ``w ∝ ((1 - λ) p̃ + λ / Q)^-1`` for
  the pixel's nearest bin, with λ = 0.5, p̃ the empirical bin distribution of the training set smoothed with a
  Gaussian of σ = 5 in ab, and ``E_p̃[w] = 1`` (paper Eq. 3–4);
* prediction is the annealed mean ``softmax(z / T)`` times the bin centres with T = 0.38 (paper Eq. 5).

Both methods follow the authors' inference pipeline (``colorizers/util.py``: ``preprocess_img`` resizes the image
to 256×256 with PIL bicubic — here the grey input, with ``torch``'s antialiased bicubic, which equals PIL's within
4e-7 on float images (test-pinned); the authors resize uint8 RGB, so their L carries an extra ±0.5/255
rounding — and takes L of both sizes; the network sees ``(L_256 - 50) / 100``; ``postprocess_tens`` upsamples the
predicted ab bilinearly (``align_corners=False``) to the original size and joins it to the *full-resolution* L).

Released weights are read through :mod:`colorbench.core.weights` (``colorbench weights fetch zhang-eccv16
zhang-siggraph17``); a missing file fails the row with the file, the path and the URL. Random weights are never
used in their place: released networks are built on the meta device and receive the file's tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.core.color import grey_ab_to_rgb, grey_to_lightness, rgb_to_lab
from colorbench.datasets.base import Batch, ImageSet
from colorbench.methods.base import BaseConfig, Method, MethodCard
from colorbench.methods.cgan import FABBRI, SEED_FABBRI
from colorbench.methods.lab import LabConfig, LabConvention, TrainableMethod, check_grey_input
from colorbench.methods.nets.zhang import AB_NORM, ECCV16Net, SIGGRAPH17Net, center_l, load_released
from colorbench.methods.registry import register_method

ZHANG_ECCV16 = "Zhang, Isola, Efros, 'Colorful Image Colorization', ECCV 2016"
ZHANG_SIGGRAPH17 = ("Zhang, Zhu, Isola, Geng, Lin, Yu, Efros, 'Real-Time User-Guided Image Colorization with "
                    "Learned Deep Priors', SIGGRAPH 2017 (automatic mode: no user hints)")

# --- the 313 bins ------------------------------------------------------------------------------------------------
#: The authors' bins (``resources/pts_in_hull.npy`` of richzhang/colorization; the .npy itself cannot be read here):
#: for each a in -90, -80, ..., 100 the bins are b = b_min, b_min + 10, ..., b_max. Taken from a public transcription
#: of that file's 313 (a, b) pairs, in the file's order (a, then b, ascending), which is the order of the released
#: ECCV model's 313 outputs; when the released file is loaded, its ``model_out`` weights (bins / 110) are compared
#: with this table and the result is recorded (``notes()["bins_match_table"]``).
_PTS_IN_HULL_ROWS = {
    -90: (50, 90), -80: (20, 90), -70: (0, 90), -60: (-20, 90), -50: (-30, 100), -40: (-40, 100),
    -30: (-50, 100), -20: (-50, 100), -10: (-60, 100), 0: (-70, 100), 10: (-80, 90), 20: (-80, 90),
    30: (-90, 90), 40: (-100, 90), 50: (-100, 80), 60: (-110, 80), 70: (-110, 80), 80: (-110, 70),
    90: (-110, 70), 100: (-90, 0),
}
ZHANG_AB_BINS = torch.tensor([(a, b) for a, (lo, hi) in _PTS_IN_HULL_ROWS.items() for b in range(lo, hi + 1, 10)],
                             dtype=torch.float32)


def derive_in_gamut_bins(step: int = 10, samples: int = 256) -> Tensor:
    """Our own derivation of in-gamut ab bins: the grid points (multiples of ``step``) that are a corner of a grid
    cell containing the ab of some sRGB colour, i.e. within ``step`` (Chebyshev distance) of the ab projection of
    the sRGB gamut over all L (D65, colorbench's ``rgb_to_lab``). The projection of the gamut solid is that of its
    surface (Lab is a continuous bijection of the RGB cube), so only the cube's 6 faces are sampled, each on a
    ``samples``² grid.

    Returns ``(K, 2)`` float32 in the authors' order (a, then b). With ``step=10`` this gives 309 bins (the same
    for 256 and 512 samples per side), all among the authors' 313; the 4 others, (40, 90), (100, -90), (100, -10)
    and (100, 0), lie further than 10 from the gamut (``tests/test_zhang.py`` pins this). The authors do not
    publish how they chose their 313."""
    v = torch.linspace(0, 1, samples, dtype=torch.float64)
    u, w = (t.reshape(-1) for t in torch.meshgrid(v, v, indexing="ij"))
    faces = []
    for axis in range(3):
        for value in (0.0, 1.0):
            cols = [u, w]
            cols.insert(axis, torch.full_like(u, value))
            faces.append(torch.stack(cols))
    rgb = torch.cat(faces, 1).reshape(1, 3, -1, 1).float()
    ab = rgb_to_lab(rgb)[0, 1:, :, 0].T.double()  # (S, 2)
    lo = torch.unique(torch.floor(ab / step).long(), dim=0)
    corners = torch.cat([lo + torch.tensor(d) for d in ((0, 0), (0, 1), (1, 0), (1, 1))])
    return (torch.unique(corners, dim=0) * step).float()  # unique sorts rows: a, then b


# --- encoding, rebalancing, decoding -------------------------------------------------------------------------------
def soft_encode(ab: Tensor, bins: Tensor, neighbours: int = 5, sigma: float = 5.0) -> tuple[Tensor, Tensor]:
    """ab ``(N, 2, h, w)`` (Lab units) -> soft targets ``(N, Q, h, w)``: the ``neighbours`` nearest bins weighted by
    ``exp(-d² / 2σ²)``, normalized to sum 1 (paper §2.1), and the nearest bin's index ``(N, h, w)``."""
    n, _, h, w = ab.shape
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2).float()
    d2 = torch.cdist(flat, bins.to(flat)).square()
    k = min(neighbours, bins.shape[0])
    near_d2, near = torch.topk(d2, k, dim=1, largest=False)  # ascending: near[:, 0] is the nearest bin
    wts = torch.exp(-(near_d2 - near_d2[:, :1]) / (2 * sigma**2))  # shifted by the nearest: same after normalizing
    wts = wts / wts.sum(1, keepdim=True)
    soft = torch.zeros(flat.shape[0], bins.shape[0], device=ab.device).scatter_(1, near, wts)
    return soft.reshape(n, h, w, -1).permute(0, 3, 1, 2), near[:, 0].reshape(n, h, w)


def nearest_bin_counts(ab: Tensor, bins: Tensor) -> Tensor:
    """How many pixels of ab ``(N, 2, h, w)`` fall nearest to each bin: ``(Q,)`` float64."""
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2).float()
    idx = torch.cdist(flat, bins.to(flat)).argmin(1)
    return torch.bincount(idx, minlength=bins.shape[0]).double().cpu()


def rebalance_weights(counts: Tensor, bins: Tensor, lam: float = 0.5, sigma: float = 5.0) -> Tensor:
    """Class-rebalancing weights ``(Q,)`` (paper Eq. 4): the empirical distribution of ``counts`` smoothed by a
    Gaussian of ``sigma`` in ab, mixed with the uniform distribution, inverted, normalized so that
    ``sum(p̃ w) = 1``. ``lam = 1`` gives equal weights; ``lam = 0`` the inverse smoothed prior."""
    p = counts.double() / counts.sum().clamp_min(1)
    c = bins.double()
    kernel = torch.exp(-torch.cdist(c, c).square() / (2 * sigma**2))
    smoothed = kernel @ p
    smoothed = smoothed / smoothed.sum().clamp_min(1e-300)
    w = 1.0 / ((1 - lam) * smoothed + lam / c.shape[0])
    return (w / (smoothed * w).sum()).float()


def resize_grey(gray: Tensor, size: int) -> Tensor:
    """Bicubic resize of grey ``(N, 1, H, W)`` to ``size``×``size`` as PIL's ``Image.resize(BICUBIC)`` (antialiased
    when shrinking; torch's antialias implementation follows PIL), clipped to [0, 1]."""
    if tuple(gray.shape[-2:]) == (size, size):
        return gray
    return F.interpolate(gray, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def colorize_like_the_authors(gray: Tensor, convention: str, input_size: int, predict_ab, chunk: int = 16) -> Tensor:
    """The authors' pipeline (``colorizers/util.py``): the network sees L of the ``input_size`` resize (0: the
    image as it is), ``predict_ab(normalized L) -> ab`` (Lab units) is upsampled bilinearly onto the full-resolution
    grid and joined with the full-resolution L. Runs in chunks of ``chunk`` images (memory)."""
    outs = []
    for g in gray.split(chunk):
        g_in = resize_grey(g, input_size) if input_size else g
        ab = predict_ab(center_l(grey_to_lightness(g_in, convention))).float()
        if ab.shape[-2:] != g.shape[-2:]:
            ab = F.interpolate(ab, size=g.shape[-2:], mode="bilinear", align_corners=False)
        outs.append(grey_ab_to_rgb(g.float(), ab, convention))
    return torch.cat(outs)


def _weights_notes(name: str, path, hash_checked: bool, extra: dict[str, Any]) -> dict[str, Any]:
    from colorbench.core import weights

    return {"weights_file": str(path), "weights_name": name, "sha256_checked": hash_checked,
            "stand_in_for_tests": weights.stand_in(name) is not None, **extra}


def _missing_weights(name: str, config, who: str) -> str | None:
    """The message of the released file's absence (or hash mismatch), or ``None`` when it can be loaded."""
    from colorbench.core import weights

    try:
        weights.require(name, config.weights_path or None, check_hash=config.check_hash, who=who)
    except weights.WeightsUnavailable as exc:
        return str(exc)
    return None


def _load(name: str, factory, config, who: str) -> tuple[nn.Module, dict[str, Any]]:
    from colorbench.core import weights

    path = weights.require(name, config.weights_path or None, check_hash=config.check_hash, who=who)
    net, facts = load_released(factory, path, who)
    stand_in = weights.stand_in(name) is not None and not config.weights_path
    return net, _weights_notes(name, path, config.check_hash and not stand_in, facts)


# --- zhang-eccv16 ------------------------------------------------------------------------------------------------------
@dataclass
class ZhangECCV16Config(LabConfig):
    """Options of ``zhang-eccv16``; the defaults are the ``paper`` preset.

    Attributes:
        width: channels of block 1 (64 as the release).
        pretrained: start from the authors' released weights (``weights_path``, default: the weights registry's
            destination of ``colorization_release_v2-9b330a0b.pth``); needs ``width=64``.
        input_size: side of the square resize the network sees (256 in the authors' pipeline; 0: the image as it
            is, sides multiples of 8). Training batches are resized the same way.
        temperature: T of the annealed mean (0.38 in the paper; the released PyTorch model applies none: 1.0).
        rebalance_lambda: λ of the class rebalancing (0.5); 1.0 disables it.
        prior_sigma: σ of the Gaussian smoothing of the empirical bin distribution (5).
        soft_neighbours, soft_sigma: nearest bins and Gaussian σ of the soft encoding (5 and 5).
        skip_grey_images: drop images whose ab are all below 5 in magnitude from the loss (the authors'
            ``NonGrayMaskLayer``).
        lr, beta1, beta2, weight_decay: Adam (paper: 3e-5, 0.9, 0.99, 1e-3).
        weights_path: the released file elsewhere ("" = the registry's destination).
        check_hash: check the file's SHA-256 against the published prefix (9b330a0b).
    """

    batch_size: int = 32
    epochs: int = 16
    width: int = 64
    pretrained: bool = False
    input_size: int = 256
    temperature: float = 0.38
    rebalance_lambda: float = 0.5
    prior_sigma: float = 5.0
    soft_neighbours: int = 5
    soft_sigma: float = 5.0
    skip_grey_images: bool = True
    lr: float = 3e-5
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 1e-3
    weights_path: str = ""
    check_hash: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.pretrained and self.width != 64:
            raise ValueError(f"pretrained=True loads the released network, which has width 64 (got {self.width})")
        if self.input_size < 0 or self.input_size % 8:
            raise ValueError(f"input_size must be 0 or a positive multiple of 8, got {self.input_size}")
        if not self.temperature > 0 or not 0 <= self.rebalance_lambda <= 1:
            raise ValueError("need temperature > 0 and rebalance_lambda in [0, 1]")
        if self.soft_neighbours < 1 or not self.soft_sigma > 0 or not self.prior_sigma > 0:
            raise ValueError("need soft_neighbours >= 1 and positive soft_sigma, prior_sigma")
        if self.lr <= 0 or self.weight_decay < 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("need lr > 0, weight_decay >= 0 and betas in [0, 1)")


_ECCV_PAPER = {"batch_size": 32, "epochs": 16, "lr_decay_fraction": 0.0, "width": 64, "pretrained": False,
               "input_size": 256, "temperature": 0.38, "lr": 3e-5, "weight_decay": 1e-3}


@register_method("zhang-eccv16", aliases=("colorful-classification",))
class ZhangECCV16(LabConvention, TrainableMethod):
    """Zhang et al.'s ECCV 2016 colorizer: 313-bin classification, class rebalancing, annealed mean.

    ``train_step`` returns ``{"G_CE": ...}`` (the rebalanced cross-entropy). ``fit_start`` computes the empirical
    bin distribution of the training split for the rebalancing weights (before it is called, a running estimate
    from the batches seen so far is used, and ``notes()`` says so).
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="zhang-eccv16",
        title="Zhang et al. ECCV 2016: 313-bin ab classification, rebalanced, annealed mean (or the released weights)",
        paper=f"{ZHANG_ECCV16}; adopted as the base model of {FABBRI}, §3.1 (its classification baseline)",
        source=SEED_FABBRI, paired=True, color_space="lab",
        licence="MIT (colorbench's code); with the released weights (preset released): the licence of "
            "richzhang/colorization (not verified here)",
        training_data=("ImageNet-1k train",),  # of the released weights (preset released); else the run's data
        weights=("zhang-eccv16",),
        choices=(
            "Network: the authors' ECCVGenerator (richzhang/colorization colorizers/eccv16.py) with its layer names, "
            "so colorization_release_v2-9b330a0b.pth loads strictly; widths scale with `width` (quick: 16).",
            "Bins: the authors' 313 (pts_in_hull.npy, a-then-b order; see ZHANG_AB_BINS). Our own derivation "
            "(derive_in_gamut_bins: grid points within 10 of the sRGB ab gamut) gives 309 of them; the 4 others are "
            "kept as the authors have them, since the released outputs are indexed by them.",
            "Soft encoding: 5 nearest bins, Gaussian σ = 5 (paper §2.1; the authors' Caffe NNEncLayer uses 10 "
            "neighbours, option soft_neighbours). Targets: ab subsampled by 4 (every 4th pixel, as the authors' "
            "stride-4 data_ab_ss layer) to the logits' 1/4 resolution.",
            "Rebalancing: λ = 0.5, prior smoothed with σ = 5, weight of the pixel's nearest bin, E_p̃[w] = 1 (paper "
            "Eq. 4); the prior is that of the run's training split (the authors': ImageNet's prior_probs.npy). "
            "Images with all |a|, |b| < 5 are left out of the loss (the authors' NonGrayMaskLayer).",
            "Decoding: annealed mean T = 0.38 (paper Eq. 5) for trained models. The released PyTorch forward "
            "(softmax of the logits, then model_out) applies no temperature; the Caffe deploy net scales the logits "
            "by 2.606 = 1/0.38 (layer conv8_313_rh) before its softmax, which the PyTorch port may have folded into "
            "model8's last conv — not checkable without the file — so the released preset follows the PyTorch "
            "forward (temperature 1.0).",
            "Input (L - 50)/100 and ab×110 as the authors' base_color.py; the inference pipeline of their util.py "
            "(bicubic resize of the input to input_size, ab upsampled bilinearly onto the full-resolution L).",
            "Optimizer: Adam lr 3e-5, betas (0.9, 0.99), weight decay 1e-3 (paper §3), constant rate; batch 32 and 16 "
            "epochs are this harness's choice (the paper trains ~450k iterations on ImageNet). Weights: PyTorch's "
            "default initialisation (the Caffe model's k-means init is not reproduced).",
            "Quick preset: width 16, native 32×32 input (input_size 0), Adam 1e-3 without weight decay, 10 epochs "
            "with linear decay over the second half. Released preset: the authors' weights, input 256, T = 1, "
            "float32 on CUDA too (amp off), no training (epochs 0; fine-tuning works with --epochs).",
        ),
    )
    Config: ClassVar[type] = ZhangECCV16Config
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": _ECCV_PAPER,
        "quick": {**_ECCV_PAPER, "epochs": 10, "lr_decay_fraction": 0.5, "width": 16, "input_size": 0, "lr": 1e-3,
                  "weight_decay": 0.0},
        "released": {**_ECCV_PAPER, "epochs": 0, "pretrained": True, "temperature": 1.0, "amp": False},
    }

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        return 1 if config.input_size else ECCV16Net.size_multiple

    @classmethod
    def unavailable_reason(cls, preset: str) -> str | None:
        config = cls.make_config(preset)
        return _missing_weights("zhang-eccv16", config, "zhang-eccv16") if config.pretrained else None

    def build_networks(self) -> None:
        c = self.config
        self._released: dict[str, Any] = {}
        if c.pretrained:
            self.G, self._released = _load("zhang-eccv16", lambda: ECCV16Net(64, 313), c, "zhang-eccv16")
            self.G.model_out.weight.requires_grad_(False)
            file_bins = self.G.bins()
            self._released["bins_match_table"] = bool(torch.allclose(file_bins, ZHANG_AB_BINS, atol=1e-3))
            self._released["bins_max_abs_diff_to_table"] = float((file_bins - ZHANG_AB_BINS).abs().max())
        else:
            self.G = ECCV16Net(c.width, ZHANG_AB_BINS.shape[0])
            self.G.set_bins(ZHANG_AB_BINS)
        self._counts = torch.zeros(ZHANG_AB_BINS.shape[0], dtype=torch.float64)
        self._prior_source = "none yet"
        self._class_weights: Tensor | None = None

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        params = [p for p in self.G.parameters() if p.requires_grad]
        return {"G": torch.optim.Adam(params, lr=c.lr, betas=(c.beta1, c.beta2), weight_decay=c.weight_decay)}

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G}

    # --- data ----------------------------------------------------------------------------------------------
    def _sized(self, x: Tensor) -> Tensor:
        s = self.config.input_size
        if not s or tuple(x.shape[-2:]) == (s, s):
            return x
        return F.interpolate(x, size=(s, s), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)

    def _target_ab(self, rgb: Tensor) -> Tensor:
        """ab of the (resized) colour image at every 4th pixel: the logits' resolution."""
        return rgb_to_lab(self._sized(rgb).float())[:, 1:, ::4, ::4]

    def fit_start(self, train: ImageSet) -> None:
        """The empirical bin distribution of the whole training split (for the rebalancing weights), on the
        method's device. Only the pixels the logits see (every 4th of the resized image) are converted to Lab
        (1/16 of the conversions of converting the whole image and then taking them: the same values up to float
        rounding of the colour matrix, ~1e-5 Lab units, which moves a pixel to another bin only when it lies that
        close to the boundary between two bins; tests/test_gpu_basics.py compares the counts)."""
        counts = torch.zeros_like(self._counts)
        bins = self.G.bins()
        for chunk in train.rgb.split(256):
            rgb = self._sized(chunk.to(self.device).float() / 255)[..., ::4, ::4]
            counts += nearest_bin_counts(rgb_to_lab(rgb)[:, 1:], bins)
        self._counts, self._class_weights = counts, None
        self._prior_source = f"training split: {len(train)} images, {int(counts.sum())} target pixels"

    def class_weights(self) -> Tensor:
        if self._class_weights is None:
            c = self.config
            self._class_weights = rebalance_weights(self._counts, self.G.bins().cpu(), c.rebalance_lambda,
                                                    c.prior_sigma)
        return self._class_weights

    def train_step(self, batch: Batch) -> dict[str, float]:
        gray, rgb = self.prepare_batch(batch)
        c = self.config
        self.G.train()
        ab = self._target_ab(rgb)
        bins = self.G.bins()
        if not self._prior_source.startswith("training split"):  # fit_start not called: running estimate
            self._counts += nearest_bin_counts(ab, bins)
            self._class_weights = None
            self._prior_source = f"running estimate from the training batches (fit_start not called), {self.steps + 1} batches"
        soft, nearest = soft_encode(ab, bins, c.soft_neighbours, c.soft_sigma)
        pixel_w = self.class_weights().to(ab.device)[nearest]  # (N, h, w)
        if c.skip_grey_images:
            colourful = (ab.abs() >= 5).flatten(1).any(1)
            pixel_w = pixel_w * colourful.view(-1, 1, 1).to(pixel_w)
        L = center_l(grey_to_lightness(self._sized(gray), c.grey_convention))
        with self.training_rng():
            with self.autocast():
                logits = self.G(L).float()
            ce = -(soft * F.log_softmax(logits, dim=1)).sum(1)  # (N, h, w)
            loss = (ce * pixel_w).mean()
            self.optimize(loss, "G")
        return self.finish_step({"G_CE": loss})

    def predict(self, gray: Tensor) -> Tensor:
        def ab(L: Tensor) -> Tensor:
            with self.autocast():
                logits = self.G(L)
            ab_n = self.G.decode(logits, self.config.temperature)
            return F.interpolate(ab_n, scale_factor=4, mode="bilinear", align_corners=False) * AB_NORM  # upsample4

        return colorize_like_the_authors(gray, self.config.grey_convention, self.config.input_size, ab)

    def notes(self) -> dict[str, Any]:
        out = {"bins": int(self.G.n_bins), "prior": self._prior_source, "temperature": self.config.temperature}
        if self.config.pretrained:
            out["released_weights"] = self._released
        return out

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["bin_counts"] = self._counts.clone()
        state["prior_source"] = self._prior_source
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "bin_counts" in state:
            self._counts = state["bin_counts"].clone().double()
            self._prior_source = str(state.get("prior_source", "checkpoint"))
            self._class_weights = None


# --- zhang-siggraph17 ----------------------------------------------------------------------------------------------------
@dataclass
class ZhangSIGGRAPH17Config(BaseConfig):
    """Options of ``zhang-siggraph17`` (inference only; ``epochs`` stays 0).

    Attributes:
        input_size: side of the square resize the network sees (256 in the authors' pipeline; 0: as it is, sides
            multiples of 8).
        weights_path: the released file elsewhere ("" = the registry's destination of siggraph17-df00044c.pth).
        check_hash: check the file's SHA-256 against the published prefix (df00044c).
    """

    epochs: int = 0
    input_size: int = 256
    weights_path: str = ""
    check_hash: bool = True

    def __post_init__(self) -> None:
        BaseConfig.__post_init__(self)  # the grey convention, parsed to a Grey
        if self.batch_size < 1 or self.epochs < 0:
            raise ValueError("need batch_size >= 1 and epochs >= 0")
        if self.input_size < 0 or self.input_size % 8:
            raise ValueError(f"input_size must be 0 or a positive multiple of 8, got {self.input_size}")


@register_method("zhang-siggraph17")
class ZhangSIGGRAPH17(Method):
    """The authors' released SIGGRAPH 2017 network in automatic mode (no hints: zero ab hints and mask).

    Nothing is trained: ``train_step`` returns ``{}`` and ``networks()`` is empty (so checkpoints do not copy the
    34M released parameters); the network is ``self.net`` and :meth:`parameter_counts` reports it.
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="zhang-siggraph17",
        title="Zhang et al. SIGGRAPH 2017, the authors' released model, automatic mode (no user hints)",
        paper=ZHANG_SIGGRAPH17,
        source="", paired=True, color_space="lab", trainable=False,
        licence="MIT (colorbench's code); released weights: the licence of richzhang/colorization (not verified here)",
        training_data=("ImageNet-1k train",), weights=("zhang-siggraph17",),
        choices=(
            "Weights: the authors' siggraph17-df00044c.pth (colorizers/siggraph17.py); without it the row fails "
            "naming the file and where to put it. Network: their SIGGRAPHGenerator with its layer names (strict "
            "load); the decoder, computed twice in their forward with identical results, is computed once.",
            "Automatic mode: ab hints and mask are zeros, as their forward without input_B / mask_B.",
            "Pipeline of their colorizers/util.py: bicubic resize to 256 (torch antialiased bicubic = PIL's), "
            "(L - 50)/100 in, Tanh×110 out, ab upsampled bilinearly onto the full-resolution L.",
            "Quick preset: input_size 64 instead of 256 (CPU-friendly; values differ from the authors' pipeline).",
        ),
    )
    Config: ClassVar[type] = ZhangSIGGRAPH17Config
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {"input_size": 256}, "quick": {"input_size": 64},
                                                     "released": {"input_size": 256}}

    @classmethod
    def unavailable_reason(cls, preset: str) -> str | None:
        return _missing_weights("zhang-siggraph17", cls.make_config(preset), "zhang-siggraph17")

    def __init__(self, config: Any = None, device: torch.device | str = "cpu", seed: int = 0) -> None:
        super().__init__(config, device, seed)
        self.net, self._notes = _load("zhang-siggraph17", SIGGRAPH17Net, self.config, "zhang-siggraph17")
        self.net.requires_grad_(False)
        self.net.to(self.device).eval()

    def train_step(self, batch: Batch) -> dict[str, float]:
        """Nothing to train: returns ``{}``."""
        return {}

    def networks(self) -> dict[str, nn.Module]:
        return {}

    def parameter_counts(self) -> dict[str, int]:
        return {"G": sum(p.numel() for p in self.net.parameters())}

    def notes(self) -> dict[str, Any]:
        return {"released_weights": self._notes, "input_size": self.config.input_size}

    @torch.no_grad()
    def colorize(self, gray: Tensor) -> Tensor:
        check_grey_input(gray, "zhang-siggraph17.colorize")
        c = self.config
        if not c.input_size and (gray.shape[-2] % 8 or gray.shape[-1] % 8):
            raise ValueError(f"zhang-siggraph17 with input_size=0 needs image sides divisible by 8, got "
                             f"{gray.shape[-2]}×{gray.shape[-1]} (use input_size=256, the authors' pipeline)")
        was_training = self.net.training
        self.net.eval()
        try:
            out = colorize_like_the_authors(gray.to(self.device).float(), c.grey_convention, c.input_size,
                                            lambda L: self.net(L) * AB_NORM)
        finally:
            self.net.train(was_training)
        return out.to(gray.device)
