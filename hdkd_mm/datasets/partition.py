"""The seeded partition of a training set into (train, held-out, test)
indices, and its CIFAR(X)/ImageNet(X) subsets; numpy only.
:class:`~hdkd_mm.datasets.splits.HeldOutSplit` is the dataset that serves
one side of it.

How the partition is drawn
--------------------------
One permutation ``numpy.random.RandomState(seed).permutation(N)`` of the base
dataset's indices (the legacy ``RandomState`` stream is frozen by NumPy, so a
split never changes with the NumPy version):

* ``stratified=False`` (default, as the MSDNet reference does): the held-out
  split is the first ``heldout_size`` indices of the permutation, i.e. a
  uniformly random subset; per-class counts of the rest vary (for CIFAR-100
  with 5,000 held out, about 450 ± 7 per class).
* ``stratified=True``: every class gives ``heldout_size`` × its share of the
  training set (largest-remainder rounding), taken in permutation order
  (CIFAR-100: exactly 50 per class, so exactly 450 remain per class).
* ``test_size=T`` (default 0): after the held-out split, the next T images
  in permutation order, stratified (every class gives T × its share of the
  images left after holding out, largest-remainder rounding), form a test
  split (``split='test'``). For data sets that ship only training images
  (the CIFAR-10 JPEG folder of the experiment suites): every number then
  comes from one seeded partition the project controls. With T = 0 the
  partition is exactly the two-way one above.
* ``per_class=X``: among the remaining images, the first X of every class in
  permutation order. Subsets are therefore nested (CIFAR(150) ⊂ CIFAR(250)
  for one seed) and never touch the held-out or test split, whatever X is.

All splits come from the same (seed, heldout_size, test_size, stratified,
base dataset), so they are disjoint by construction (asserted when the
partition is computed); :func:`~hdkd_mm.datasets.splits.check_disjoint`
verifies it for two built datasets, e.g. the train and held-out dataloaders
of a config.
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np

__all__ = ['Partition', 'partition_indices', 'split_indices']


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_sizes(heldout_size, per_class, who: str = '') -> None:
    if not _is_int(heldout_size) or heldout_size < 0:
        raise ValueError(
            f'{who}heldout_size={heldout_size!r} must be an int >= 0 (0 = no '
            'held-out split); fix: set e.g. heldout_size=5000.')
    if per_class is not None and (not _is_int(per_class) or per_class < 1):
        raise ValueError(f'{who}per_class={per_class!r} must be None or an '
                         'int >= 1; fix: per_class=None keeps every '
                         'remaining training image.')


def carved_text(heldout_size: int, test_size: int) -> str:
    """``heldout_size=H`` (``+ test_size=T`` when a test split is carved)."""
    test = f' + test_size={test_size}' if test_size else ''
    return f'heldout_size={heldout_size}{test}'


def _class_name(class_names, c: int) -> str:
    if class_names is not None and 0 <= c < len(class_names):
        return f'class {c} ({class_names[c]!r})'
    return f'class {c}'


def _rank_within_class(labels_in_order: np.ndarray) -> np.ndarray:
    """For a sequence of labels, the position of every item among the items
    of its own class (0 for the first item of a class, 1 for the second...)."""
    n = len(labels_in_order)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(labels_in_order, kind='stable')
    sorted_labels = labels_in_order[order]
    starts = np.flatnonzero(np.r_[True,
                                  sorted_labels[1:] != sorted_labels[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - group_start
    return rank


def _stratified_quota(counts: np.ndarray, heldout_size: int) -> np.ndarray:
    """Held-out images per class: proportional, largest-remainder rounding
    (ties to the lower class index); sums to ``heldout_size``."""
    total = counts.sum()
    exact = counts * heldout_size / total
    quota = np.floor(exact).astype(np.int64)
    left = heldout_size - int(quota.sum())
    if left:
        frac = exact - quota
        order = np.lexsort((np.arange(len(counts)), -frac))
        quota[order[:left]] += 1
    return quota


class Partition(NamedTuple):
    """Sorted int64 indices of the three disjoint sides of a partition."""
    train: np.ndarray
    heldout: np.ndarray
    test: np.ndarray


def partition_indices(
    num_samples: int,
    heldout_size: int,
    seed: int = 0,
    labels: Optional[Sequence[int]] = None,
    stratified: bool = False,
    per_class: Optional[int] = None,
    num_classes: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None,
    test_size: int = 0,
) -> Partition:
    """Partition ``range(num_samples)`` into (train, held-out, test) indices.

    See the module docstring for the procedure. ``labels`` are needed for
    ``stratified=True``, ``test_size > 0`` and ``per_class``;
    ``num_classes`` (default: the number of ``class_names`` or
    ``max(labels) + 1``) are the classes that must each provide
    ``per_class`` images. ``train`` is already reduced to ``per_class``
    images per class.
    """
    n = int(num_samples)
    check_sizes(heldout_size, per_class)
    if not _is_int(test_size) or test_size < 0:
        raise ValueError(
            f'test_size={test_size!r} must be an int >= 0 (0 = no test split '
            'carved from the training set); fix: e.g. test_size=10000.')
    if heldout_size + test_size >= n:
        raise ValueError(
            f'{carved_text(heldout_size, test_size)} must be smaller than the '
            f'training set, which has {n} images; fix: lower heldout_size '
            '(the paper holds out 5000 CIFAR-100 / 50000 ImageNet images)'
            f'{" or test_size" if test_size else ""}.')
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64, copy=False).reshape(-1)
        if len(labels) != n:
            raise ValueError(f'{len(labels)} labels for {n} samples.')
    elif stratified or per_class is not None or test_size:
        raise ValueError(
            'stratified=True, test_size and per_class need the labels.')

    perm = np.random.RandomState(seed).permutation(n)
    nc = int(labels.max()) + 1 if labels is not None and n else 0
    held = np.zeros(n, dtype=bool)
    if heldout_size:
        if stratified:
            quota = _stratified_quota(np.bincount(labels, minlength=nc),
                                      heldout_size)
            lp = labels[perm]
            held[perm[_rank_within_class(lp) < quota[lp]]] = True
        else:
            held[perm[:heldout_size]] = True
    rest = perm[~held[perm]]  # remaining images, in permutation order
    test = np.zeros(n, dtype=bool)
    if test_size:
        lr = labels[rest]
        quota = _stratified_quota(np.bincount(lr, minlength=nc), test_size)
        test[rest[_rank_within_class(lr) < quota[lr]]] = True
        rest = rest[~test[rest]]

    heldout_idx = np.flatnonzero(held).astype(np.int64)
    test_idx = np.flatnonzero(test).astype(np.int64)
    if per_class is not None:
        if num_classes is None:
            num_classes = (len(class_names) if class_names is not None else
                           int(labels.max()) + 1)
        num_classes = max(int(num_classes), int(labels.max()) + 1)
        counts = np.bincount(labels[rest], minlength=num_classes)
        if counts.min() < per_class:
            worst = int(np.argmin(counts))
            short = int((counts < per_class).sum())
            carved = f'holding out {heldout_size} images' + (
                f' and carving a test split of {test_size}'
                if test_size else '')
            raise ValueError(
                f'per_class={per_class} is larger than the remaining training '
                f'images of {_class_name(class_names, worst)}: it has only '
                f'{counts[worst]} after {carved} ({short} of {num_classes} '
                f'classes have fewer than {per_class}); fix: use per_class '
                f'<= {counts.min()}, per_class=None (all remaining images), '
                'or a smaller heldout_size / test_size / stratified=True.')
        lr = labels[rest]
        rest = rest[_rank_within_class(lr) < per_class]
    train_idx = np.sort(rest).astype(np.int64)

    # Disjoint by construction: say so loudly if that ever stops being true.
    if (held[train_idx].any() or test[train_idx].any() or (held & test).any()
            or len(train_idx) + len(heldout_idx) + len(test_idx) > n):
        raise AssertionError('internal error: the splits of the partition '
                             'overlap')
    return Partition(train_idx, heldout_idx, test_idx)


def split_indices(num_samples: int, heldout_size: int, seed: int = 0,
                  labels: Optional[Sequence[int]] = None,
                  stratified: bool = False, per_class: Optional[int] = None,
                  num_classes: Optional[int] = None,
                  class_names: Optional[Sequence[str]] = None
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """The (train, held-out) sides of :func:`partition_indices` without a
    test split (the two-way partition of the paper)."""
    part = partition_indices(num_samples, heldout_size, seed, labels,
                             stratified, per_class, num_classes, class_names)
    return part.train, part.heldout
