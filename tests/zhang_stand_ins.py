"""TEST ONLY: random-valued stand-ins for Zhang et al.'s released weight files, in their on-disk format.

The tensor names and shapes come from ``tests/fixtures/zhang_released_keys.json`` (transcribed from the authors'
model code, see ``tests/fixtures/make_zhang_keys.py``), not from colorbench's networks. Values: He-scaled normal
conv weights, small biases, batch-norm statistics near (0, 1); the ECCV file's ``model_out.weight`` holds the bin
centres / 110 as the released file does. A stand-in is used only through ``colorbench.core.weights.stand_in_for_tests``
or an explicit path with ``check_hash=False``; its colours mean nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

KEYS = json.loads((Path(__file__).parent / "fixtures" / "zhang_released_keys.json").read_text())


def stand_in_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    from colorbench.methods.zhang import ZHANG_AB_BINS

    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, _kind in KEYS[name]:
        leaf = key.rsplit(".", 1)[1]
        if leaf == "num_batches_tracked":
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif leaf == "running_var":
            state[key] = 1 + 0.1 * torch.rand(shape, generator=g)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
        elif leaf == "weight":  # batch-norm scale
            state[key] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:  # biases, batch-norm shift and running mean
            state[key] = 0.05 * torch.randn(shape, generator=g)
    if name == "zhang-eccv16":
        state["model_out.weight"] = (ZHANG_AB_BINS / 110).T.reshape(2, 313, 1, 1).clone()
    return state


def write_stand_in(name: str, path: Path, seed: int = 0) -> Path:
    torch.save(stand_in_state(name, seed), path)
    return path
