"""Which images of which base dataset a dataset reads, and how many images
two datasets share.

A dataset's *sources* are (base dataset, indices into it) pairs:

* a :class:`~hdkd_mm.datasets.HeldOutSplit` reads its split's indices of
  its base dataset;
* a file-backed dataset (one with a ``data_root`` or ``ann_file``, e.g.
  MMPretrain's and our ``Local*`` classes) reads all of itself;
* ``torch.utils.data.Subset`` and MMEngine's ``RepeatDataset``,
  ``ClassBalancedDataset`` and ``ConcatDataset`` read (parts of) the
  datasets they wrap; a dataloader reads its dataset.

Two base datasets are the same when their identities are equal: class, data
root, annotation file, data prefix, split and size, the identity that
:meth:`HeldOutSplit.split_key` starts with. Indices into the same base are
then directly comparable, so the shared count is exact. Anything else (an
in-memory dataset without files, different base datasets that might hold
copies of the same images) cannot be compared: :func:`shared_images`
returns ``None`` for it.
"""
from typing import List, NamedTuple, Optional

import numpy as np

from .splits import HeldOutSplit, _base_identity


class Source(NamedTuple):
    """``indices`` (sorted, unique) of the base dataset ``base`` (its
    identity string), read through ``description``."""
    base: str
    indices: np.ndarray
    description: str


def _file_backed(dataset) -> bool:
    return bool(getattr(dataset, 'data_root', '') or getattr(
        dataset, 'ann_file', ''))


def describe(dataset) -> str:
    """A short description of a dataset (or dataloader) for messages."""
    dataset = getattr(dataset, 'dataset', dataset) if hasattr(
        dataset, 'batch_size') else dataset
    if isinstance(dataset, HeldOutSplit):
        return (f"HeldOutSplit(split='{dataset.split}') of "
                f'{_base_identity(dataset.dataset)}')
    if _file_backed(dataset):
        return _base_identity(dataset)
    return type(dataset).__name__


def image_sources(dataset) -> Optional[List[Source]]:
    """The (base dataset, indices) pairs that ``dataset`` (or a dataloader
    over it) reads; ``None`` when some part of it cannot be identified."""
    if hasattr(dataset, 'batch_size') and hasattr(dataset, 'dataset'):
        dataset = dataset.dataset  # a DataLoader
    if isinstance(dataset, HeldOutSplit):
        return [Source(_base_identity(dataset.dataset),
                       np.asarray(dataset.indices), describe(dataset))]
    parts = getattr(dataset, 'datasets', None)  # ConcatDataset
    if isinstance(parts, (list, tuple)):
        out = []
        for part in parts:
            sub = image_sources(part)
            if sub is None:
                return None
            out += sub
        return out
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and hasattr(dataset, 'indices'):  # torch Subset
        sub = image_sources(inner)
        if sub is None:
            return None
        keep = np.asarray(dataset.indices, dtype=np.int64)
        out, start = [], 0
        for src in sub:  # Subset indices run over the concatenated sources
            local = keep[(keep >= start) & (keep < start + len(src.indices))]
            out.append(src._replace(
                indices=np.unique(src.indices[local - start])))
            start += len(src.indices)
        return out
    if inner is not None:  # RepeatDataset, ClassBalancedDataset
        return image_sources(inner)
    if _file_backed(dataset) and hasattr(dataset, '__len__'):
        return [Source(_base_identity(dataset),
                       np.arange(len(dataset), dtype=np.int64),
                       describe(dataset))]
    return None


def shared_images(a, b) -> Optional[int]:
    """How many images datasets (or dataloaders) ``a`` and ``b`` share.

    Exact where both read the same base dataset; ``None`` when it cannot be
    told: a part of either is not identifiable, or they read different base
    datasets and none that is shared has a common image (different bases
    may still hold copies of the same images).
    """
    sa, sb = image_sources(a), image_sources(b)
    if sa is None or sb is None:
        return None
    shared, unknown = 0, False
    for x in sa:
        for y in sb:
            if x.base == y.base:
                shared += int(np.intersect1d(x.indices, y.indices).size)
            else:
                unknown = True
    if shared == 0 and unknown:
        return None
    return shared
