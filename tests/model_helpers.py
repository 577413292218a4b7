"""Helpers shared by the tests that build random models."""
import torch
import torch.nn as nn


def perturb_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics for every BatchNorm (random init has
    mean 0 / var 1, which would hide a wrong row selection or a BatchNorm
    folded wrongly). Returns ``model``."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape,
                                                   generator=gen))
            m.running_var.copy_(torch.empty(m.running_var.shape).uniform_(
                0.5, 2.0, generator=gen))
    return model
