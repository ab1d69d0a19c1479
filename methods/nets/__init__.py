"""Network building blocks shared by the methods (generators, discriminators, init and norm helpers)."""

from colorbench.methods.nets.common import (
    INIT_TYPES,
    NORMS,
    add_to_input,
    count_parameters,
    init_weights,
    norm_layer,
    set_requires_grad,
    set_training,
    spectral_norm_all,
)
from colorbench.methods.nets.autoencoder import AutoEncoderDiscriminator
from colorbench.methods.nets.colorful import ColorfulNet
from colorbench.methods.nets.common import IBN
from colorbench.methods.nets.multiscale import MultiScaleDiscriminator
from colorbench.methods.nets.patchgan import PatchDiscriminator, patchgan_output_size, patchgan_receptive_field
from colorbench.methods.nets.unet import MIN_NUM_DOWNS, UnetGenerator, UnetSkipBlock, largest_num_downs

__all__ = [
    "AutoEncoderDiscriminator",
    "ColorfulNet",
    "IBN",
    "MultiScaleDiscriminator",
    "INIT_TYPES",
    "MIN_NUM_DOWNS",
    "NORMS",
    "add_to_input",
    "PatchDiscriminator",
    "UnetGenerator",
    "UnetSkipBlock",
    "count_parameters",
    "init_weights",
    "largest_num_downs",
    "norm_layer",
    "patchgan_output_size",
    "patchgan_receptive_field",
    "set_requires_grad",
    "set_training",
    "spectral_norm_all",
]

# Unpaired methods (CycleGAN family, SpyncoGan, Col-Cycle).
from colorbench.methods.nets.capsule import CapsuleDiscriminator, dynamic_routing, squash  # noqa: E402
from colorbench.methods.nets.pool import ImagePool  # noqa: E402
from colorbench.methods.nets.resnet import ConditionalInstanceNorm2d, ResnetBlock, ResnetGenerator  # noqa: E402
from colorbench.methods.nets.spynco import (  # noqa: E402
    ColCycleGenerator,
    HandcraftedTranslation,
    SeparableConv2d,
    SeparablePatchDiscriminator,
    SpyncoGenerator,
    sobel_edges,
)
