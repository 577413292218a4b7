# The bilevel γ step of the harmonized schemes (hmsdnet, hdbt, hdkd) on top
# of msdnet6_fmnist100.py: γ learned on one held-out batch of 32 per training
# iteration with the exact forward-mode hypergradient, Adam lr 1e-3 for γ
# (the block of configs/_base_/schedules/*_bilevel.py, on this regime's
# schedule); θ keeps the schedule of the base.
_base_ = ['./msdnet6_fmnist100.py']
model = dict(
    loss_weights=dict(
        type='LearnedLossWeights',
        init='ds_like',  # 'dbt_like' | 'ds_like' | 'rand' | 'fixed'
        alpha=0.5))  # α of Eq. 10
optim_wrapper = dict(
    constructor='BilevelOptimWrapperConstructor',
    gamma=dict(optimizer=dict(type='Adam', lr=1e-3)))
param_scheduler = dict(
    _delete_=True,
    model={{_base_.param_scheduler}},
    gamma=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])
train_cfg = dict(
    _delete_=True,  # `type` replaces the base's `by_epoch`
    type='BilevelEpochBasedTrainLoop', max_epochs={{_base_.max_epochs}},
    val_interval={{_base_.max_epochs}},
    bilevel=dict(hypergrad='jvp', gamma_interval=1))
