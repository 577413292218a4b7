"""The train loop of the bilevel iteration: a held-out batch for every γ
step, from a top-level ``heldout_dataloader`` config key, and the step's
knobs from ``train_cfg.bilevel`` (:class:`~hdkd_mm.engine.BilevelStepConfig`).

::

    train_cfg = dict(type='BilevelEpochBasedTrainLoop', max_epochs=300,
                     val_interval=10,
                     bilevel=dict(hypergrad='jvp', gamma_interval=1))
    heldout_dataloader = dict(batch_size=64, num_workers=2,
                              dataset=dict(type='HeldOutSplit',
                                           split='heldout', ...),
                              sampler=dict(type='DefaultSampler',
                                           shuffle=True))

The loop behaves exactly like MMEngine's ``EpochBasedTrainLoop`` for models
that do not learn γ (it then builds no held-out loader), so one base config
serves every scheme. When the loop is built, i.e. before training starts,
the set-up is checked (:mod:`hdkd_mm.engine.checks`): a model that learns γ
needs a held-out dataloader that gives batches, a γ optimizer, and a
held-out set that shares no image with the training set (two
:class:`~hdkd_mm.datasets.HeldOutSplit` views of one partition, see
:func:`~hdkd_mm.datasets.check_disjoint`) nor with the val/test sets, unless
``allow_heldout_overlap=True``; held-out data that cannot be compared with
the training set is used with a warning that nothing proves it disjoint.

Data parallelism: MMEngine's ``MMDistributedDataParallel.train_step`` runs
its own step (and fails on an ``OptimWrapperDict``), so the loop calls
``module.train_step(data, optim_wrapper, wrapper=ddp)`` of a wrapped model
that learns γ: the θ forward/backward runs through the wrapper (g is
all-reduced), γ and its EMAs are kept out of DDP's sync by the classifier and
updated identically on every rank (the held-out gradient v, J v and the
held-out CE are averaged over ranks). So ``tools/dist_train.sh CONFIG N``
needs no wrapper config; on CPU, ``hdkd_mm.launch.prepare_config`` sets the
gloo backend and ``device_ids=None``. BatchNorm statistics are per rank in
the virtual passes; SyncBatchNorm is not supported by the JVP pass.

The held-out stream is restarted at every epoch with the sampler's epoch set
from the train epoch (``epoch * 4096 + cycle``, cycling when the held-out
split is exhausted within an epoch), so the held-out batches are a function
of (epoch, iteration) and a resumed run sees the same ones.
"""
import logging
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import LOOPS
from torch.utils.data import DataLoader

from .checks import check_heldout_data, check_training_setup
from .step_cfg import BilevelStepConfig


class HeldOutStream:
    """An endless, epoch-seeded iterator over a held-out dataloader."""

    def __init__(self, loader: DataLoader):
        self.loader = loader
        self.epoch = 0
        self.cycle = 0
        self._it = None

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.cycle, self._it = int(epoch), 0, None

    def _restart(self) -> None:
        sampler = getattr(self.loader, 'sampler', None)
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(self.epoch * 4096 + self.cycle)
        self._it = iter(self.loader)

    def next(self):
        if self._it is None:
            self._restart()
        try:
            return next(self._it)
        except StopIteration:
            self.cycle += 1
            self._restart()
            try:
                return next(self._it)
            except StopIteration:
                raise RuntimeError(
                    'The held-out dataloader gave no batch: check '
                    'heldout_dataloader.batch_size against the size of the '
                    'held-out split (drop_last=True drops a short batch).')

    __call__ = next


def train_step(model, data, optim_wrapper):
    """``model.train_step``, routing a DDP wrapper of a model with its own
    bilevel step to ``module.train_step(..., wrapper=model)``."""
    if is_model_wrapper(model) and getattr(model.module,
                                           'learns_loss_weights', False):
        return model.module.train_step(data, optim_wrapper, wrapper=model)
    return model.train_step(data, optim_wrapper=optim_wrapper)


@LOOPS.register_module()
class BilevelEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that feeds held-out batches to γ steps.

    Args:
        heldout_dataloader (dict or DataLoader, optional): the held-out
            loader; by default the config's top-level ``heldout_dataloader``.
        bilevel (dict, optional): the bilevel step's knobs, a
            :class:`~hdkd_mm.engine.BilevelStepConfig` (validated here, for
            every scheme); its defaults when left out.
        allow_heldout_overlap (bool): train even when the held-out set
            shares images with the training set or is a val/test set (an
            error otherwise; see :func:`~hdkd_mm.engine.checks.
            check_heldout_data`). Logged loudly and recorded in the message
            hub (``heldout_overlap``, saved in checkpoints). Default: False.
        Others: as ``EpochBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader, max_epochs: int,
                 val_begin: int = 1, val_interval: int = 1,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None,
                 heldout_dataloader: Union[dict, DataLoader, None] = None,
                 bilevel: Optional[dict] = None,
                 allow_heldout_overlap: bool = False):
        self.step_cfg = BilevelStepConfig.from_cfg(bilevel)
        check_training_setup(runner)
        super().__init__(runner, dataloader, max_epochs, val_begin,
                         val_interval, dynamic_intervals)
        model = runner.model
        module = model.module if is_model_wrapper(model) else model
        self.heldout: Optional[HeldOutStream] = None
        self.heldout_overlap: List[str] = []
        if not getattr(module, 'learns_loss_weights', False):
            return
        cfg = heldout_dataloader
        if cfg is None:
            cfg = runner.cfg.get('heldout_dataloader', None)
        if cfg is None:
            scheme = getattr(getattr(module.head, 'loss_module', None),
                             'scheme_name', '?')
            raise ValueError(
                f'The scheme {scheme!r} learns the objective weights γ on a '
                'held-out split, but the config has no `heldout_dataloader`: '
                'add one (e.g. `heldout_dataloader = dict(batch_size=64, '
                "dataset=dict(type='HeldOutSplit', split='heldout', ...), "
                "sampler=dict(type='DefaultSampler', shuffle=True))`), or "
                "freeze γ (loss_weights=dict(init='fixed', ...)).")
        if not isinstance(cfg, DataLoader):
            diff_rank_seed = runner._randomness_cfg.get('diff_rank_seed',
                                                        False)
            cfg = runner.build_dataloader(
                cfg, seed=runner.seed, diff_rank_seed=diff_rank_seed)
        self.heldout_overlap = check_heldout_data(
            runner, self.dataloader, cfg, allow_overlap=allow_heldout_overlap)
        self.heldout = HeldOutStream(cfg)
        module.set_heldout_source(self.heldout)
        module.set_bilevel_step(self.step_cfg)

    def run_epoch(self) -> None:
        if self.heldout is not None:
            self.heldout.start_epoch(self._epoch)
            if self.heldout_overlap:
                print_log('allow_heldout_overlap=True: this epoch fits γ on '
                          'a held-out set that is not held out (see the '
                          'start of the log).', logger='current',
                          level=logging.WARNING)
        super().run_epoch()

    def run_iter(self, idx, data_batch: Sequence[dict]) -> None:
        self.runner.call_hook(
            'before_train_iter', batch_idx=idx, data_batch=data_batch)
        outputs = train_step(self.runner.model, data_batch,
                             self.runner.optim_wrapper)
        self.runner.call_hook(
            'after_train_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)
        self._iter += 1
