"""Data parallelism for the bilevel iteration.

MMEngine's ``MMDistributedDataParallel.train_step`` runs its own step and
does not call the module's; with an ``OptimWrapperDict`` it fails
(``optim_context should be called by each optimizer separately``).
:class:`BilevelDistributedDataParallel` delegates to
``module.train_step(data, optim_wrapper, wrapper=self)``:

* the θ forward/backward runs through DDP, so g is all-reduced as usual;
* γ lives on the unwrapped module and is kept out of DDP's gradient and buffer
  sync (the classifier lists γ and the EMAs in
  ``_ddp_params_and_buffers_to_ignore``);
* the held-out gradient v is averaged over ranks before the local J v, and
  J v after; the per-exit held-out CE (for Eq. 10 and the EMAs) likewise, so
  γ and E_k stay identical on every rank.

Config::

    model_wrapper_cfg = dict(type='BilevelDistributedDataParallel',
                             broadcast_buffers=False,
                             find_unused_parameters=False)

BatchNorm statistics are per rank in the virtual passes (as in the train
forward without SyncBN); SyncBatchNorm is not supported by the forward-mode
JVP pass. The averaged hypergradient equals the single-process one on the
concatenated batch exactly for models without batch statistics (tested).

(:class:`~hdkd_mm.engine.BilevelEpochBasedTrainLoop` also routes a plain
``MMDistributedDataParallel`` this way.) On CPU: the gloo backend and
``device_ids=None`` (``hdkd_mm.launch.prepare_config`` does both).
"""
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class BilevelDistributedDataParallel(MMDistributedDataParallel):
    """DDP wrapper that delegates ``train_step`` to the wrapped module."""

    delegates_train_step = True

    def train_step(self, data, optim_wrapper):
        if hasattr(self.module, 'learns_loss_weights'):
            return self.module.train_step(data, optim_wrapper, wrapper=self)
        return super().train_step(data, optim_wrapper)
