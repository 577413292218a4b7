"""Datasets: a seeded held-out split wrapper (with CIFAR(X)/ImageNet(X)
subsets) and local-files-only versions of MMPretrain's dataset classes."""
from .local import (LocalCIFAR10, LocalCIFAR100, LocalFashionMNIST,
                    LocalImageNet)
from .partition import Partition, partition_indices, split_indices
from .splits import HeldOutSplit, check_disjoint
from .transforms import CenterPad, GrayToRGB

__all__ = [
    'HeldOutSplit', 'Partition', 'check_disjoint', 'partition_indices',
    'split_indices', 'LocalCIFAR10',
    'LocalCIFAR100', 'LocalFashionMNIST', 'LocalImageNet', 'CenterPad',
    'GrayToRGB'
]
