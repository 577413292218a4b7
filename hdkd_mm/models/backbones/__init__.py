from .msdnet import MSDNet

__all__ = ['MSDNet']
