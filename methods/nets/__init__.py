"""Network building blocks shared by the methods (generators, discriminators, init and norm helpers)."""

from colorbench.methods.nets.common import (
    INIT_TYPES,
    NORMS,
    count_parameters,
    init_weights,
    norm_layer,
    set_requires_grad,
    set_training,
    spectral_norm_all,
)
from colorbench.methods.nets.patchgan import PatchDiscriminator, patchgan_output_size, patchgan_receptive_field
from colorbench.methods.nets.unet import MIN_NUM_DOWNS, UnetGenerator, UnetSkipBlock, largest_num_downs

__all__ = [
    "INIT_TYPES",
    "MIN_NUM_DOWNS",
    "NORMS",
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
