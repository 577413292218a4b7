# The bilevel γ step of the harmonized schemes (hmsdnet, hdbt, hdkd) on top
# of msdnet_cifar10_lowdata.py: γ learned on one held-out batch of 32 per
# training iteration with the exact forward-mode hypergradient; γ's
# optimizer is Adam with lr ε (`gamma_lr`, chosen on the held-out split by
# configs/experiments/selection/cifar10_gamma_lr.yaml), constant; θ keeps
# the schedule of the base.
_base_ = ['./msdnet_cifar10_lowdata.py']
gamma_lr = 1e-2  # chosen: cifar10_gamma_lr.yaml, eps1e-2
model = dict(
    loss_weights=dict(
        type='LearnedLossWeights',
        init='ds_like',  # 'dbt_like' | 'ds_like' | 'rand' | 'fixed'
        alpha=0.5))  # α of Eq. 10
optim_wrapper = dict(
    constructor='BilevelOptimWrapperConstructor',
    gamma=dict(optimizer=dict(type='Adam', lr=gamma_lr)))
param_scheduler = dict(
    _delete_=True,
    model={{_base_.param_scheduler}},  # θ's schedule, unchanged
    gamma=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])
train_cfg = dict(
    _delete_=True,  # `type` replaces the base's `by_epoch`
    type='BilevelEpochBasedTrainLoop', max_epochs={{_base_.max_epochs}},
    val_interval={{_base_.max_epochs}})
