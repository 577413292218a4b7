# The bilevel iteration (Algorithm 1) on the schedule of imagenet_sgd_90e.py,
# for the harmonized schemes (hmsdnet, hdbt, hdkd): θ keeps that schedule; γ,
# the objective weights (the model's `loss_weights`, LearnedLossWeights), gets
# its own optimizer, Adam with a constant lr ε = 1e-3, and a step on one held-
# out batch (the top-level `heldout_dataloader` of the dataset config) every
# `gamma_interval` iterations, with the exact forward-mode hypergradient. The
# block is the same in every *_bilevel.py schedule; only θ's schedule differs.
_base_ = ['./imagenet_sgd_90e.py']
optim_wrapper = dict(
    constructor='BilevelOptimWrapperConstructor',
    gamma=dict(optimizer=dict(type='Adam', lr=1e-3)))  # γ's lr is ε
# One scheduler list per optimizer: θ's of the base schedule, γ's constant.
param_scheduler = dict(
    _delete_=True,
    model={{_base_.param_scheduler}},
    gamma=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])
train_cfg = dict(
    _delete_=True,  # `type` replaces the base's `by_epoch`
    type='BilevelEpochBasedTrainLoop',
    max_epochs={{_base_.train_cfg.max_epochs}},
    val_interval={{_base_.train_cfg.val_interval}},
    # The step's knobs (hdkd_mm.engine.BilevelStepConfig; also
    # virtual_step='sgd', fd_eps=0.01, jvp_backend='forward_ad',
    # jvp_reuse_forward=True by default).
    bilevel=dict(
        hypergrad='jvp',  # exact; 'finite_diff' is cheaper, approximate
        gamma_interval=1))
