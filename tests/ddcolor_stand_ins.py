"""TEST ONLY: a random-valued stand-in for the authors' ``ddcolor_paper_tiny.pth``, in its on-disk layout.

Layout: BasicSR's ``{"params": state_dict}`` with the names of the authors' network, including the unused
``encoder.arch.head_cls`` classifier their ConvNeXt has (tests/test_ddcolor.py checks the name set against the
authors' code in the modelscope wheel). Values: colorbench's DDColorNet initialisation (seed 0), then 3 forward
passes in train mode on random images so that the spectral-norm vectors and batch-norm statistics are those of
the random weights; the refine bias is then set so that the mean predicted ab is about (10, 20). Its colours mean
nothing; it is used only through ``colorbench.core.weights.stand_in_for_tests`` or with ``check_hash=False``, and the
method then records ``stand_in_for_tests`` / ``sha256_checked: False``.
"""

from __future__ import annotations

from pathlib import Path

import torch


def stand_in_state(seed: int = 0) -> dict[str, torch.Tensor]:
    from colorbench.methods.nets.ddcolor import DDColorNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DDColorNet("convnext-t")
        net.train()
        with torch.no_grad():
            for _ in range(3):
                net(torch.rand(2, 3, 64, 64))
            net.eval()
            ab = net(torch.rand(2, 3, 64, 64))
            bias = net.refine_net[0][0].bias
            bias += torch.tensor([10.0, 20.0]) - ab.mean((0, 2, 3))
        state = {k: v.clone() for k, v in net.state_dict().items()}
        g = torch.Generator().manual_seed(seed)
        state["encoder.arch.head_cls.weight"] = 0.02 * torch.randn(4, 768, generator=g)
        state["encoder.arch.head_cls.bias"] = torch.zeros(4)
    return state


def write_stand_in(path: Path, seed: int = 0) -> Path:
    """Saved in float16 (110 MB instead of the released file's 220 MB: the loader reads any float dtype as float32;
    the values are rounded to float16, which does not matter for random test values)."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in stand_in_state(seed).items()}
    torch.save({"params": state}, path)
    return path
