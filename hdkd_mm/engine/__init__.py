"""The bilevel iteration of the harmonized schemes inside MMEngine: the
hypergradient, the two-optimizer constructor, the held-out train loop and the
step's knobs; the checks of a training set-up that run before the first step
(:mod:`.checks`) and checkpoints that a killed run never leaves half-written
(:mod:`.checkpoint`).

Enabling HDKD on a config is one ``_base_`` schedule
(``configs/_base_/schedules/*_bilevel.py``) and the scheme; spelled out::

    model = dict(
        head=dict(loss=dict(type='DenseKDLoss', scheme='hdkd')),  # or hdbt/hmsdnet
        # optional, these are the defaults (see LearnedLossWeights):
        loss_weights=dict(type='LearnedLossWeights', init='ds_like',
                          alpha=0.5, projection='simplex'))
    optim_wrapper = dict(
        _delete_=True,
        constructor='BilevelOptimWrapperConstructor',
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
        gamma=dict(optimizer=dict(type='Adam', lr=1e-3)))   # ε
    param_scheduler = dict(
        _delete_=True,
        model=[dict(type='MultiStepLR', by_epoch=True, milestones=[150, 225],
                    gamma=0.1)],
        gamma=[])                                            # constant ε
    train_cfg = dict(
        type='BilevelEpochBasedTrainLoop', max_epochs=300,
        # optional, these are the defaults (see BilevelStepConfig):
        bilevel=dict(hypergrad='jvp', virtual_step='sgd', gamma_interval=1))
    heldout_dataloader = dict(...)        # from the dataset base config

Multi-GPU (``tools/dist_train.sh CONFIG N``) needs nothing more: the loop
routes MMEngine's DDP wrapper to the model's own bilevel step.

The same optim_wrapper/param_scheduler/train_cfg serve the fixed schemes
(msdnet, dbt, naive_dkd): no γ optimizer and no held-out loader are built
for them. A plain ``param_scheduler`` (not split by optimizer) would drive the
γ learning rate with θ's schedule too.
"""
from .checkpoint import AtomicCheckpointHook, find_resume_checkpoint
from .hypergrad import (HypergradResult, all_reduce_mean, batch_statistics,
                        gamma_hypergradient, heldout_gradient,
                        objective_finite_diff, objective_jvp, virtual_step)
from .loops import BilevelEpochBasedTrainLoop, HeldOutStream
from .optim import BilevelOptimWrapperConstructor
from .step_cfg import BilevelStepConfig

__all__ = [
    'AtomicCheckpointHook', 'find_resume_checkpoint',
    'BilevelEpochBasedTrainLoop', 'BilevelOptimWrapperConstructor',
    'BilevelStepConfig', 'HeldOutStream', 'HypergradResult',
    'all_reduce_mean', 'batch_statistics', 'gamma_hypergradient',
    'heldout_gradient', 'objective_finite_diff', 'objective_jvp',
    'virtual_step'
]
