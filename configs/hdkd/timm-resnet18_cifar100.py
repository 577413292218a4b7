# HDKD on the timm ResNet-18: learned γ over the CE terms
# and every dense KD term (Eq. 5), the bilevel iteration of Algorithm 1.
#   python tools/train.py configs/hdkd/timm-resnet18_cifar100.py
# Baselines, same model and data:
#   configs/msdnet/timm-resnet18_cifar100.py (Σ CE)
#   configs/dbt/timm-resnet18_cifar100.py (DBT)
# 4 exits: 4 CE + 6 dense KD objectives, each with its learned γ.
_base_ = ['../msdnet/timm-resnet18_cifar100.py']
model = dict(
    head=dict(loss=dict(scheme='hdkd', temperature=4.0)),
    loss_weights=dict(
        type='LearnedLossWeights',
        init='ds_like',  # 'dbt_like' | 'ds_like' | 'rand' | 'fixed'
        alpha=0.5,  # α of Eq. 10 (balanced validation loss)
        hypergrad='jvp',  # exact; 'finite_diff' is cheaper, approximate
        gamma_interval=1))
optim_wrapper = dict(
    constructor='BilevelOptimWrapperConstructor',
    gamma=dict(optimizer=dict(type='Adam', lr=1e-3)))  # γ's lr is ε
# Held-out batches come from the top-level `heldout_dataloader`.
train_cfg = dict(
    _delete_=True,  # `type` replaces the schedule's `by_epoch`
    type='BilevelEpochBasedTrainLoop', max_epochs=300, val_interval=10)
# One scheduler list per optimizer: θ keeps the MSDNet schedule, γ's lr
# (ε) stays constant.
param_scheduler = dict(
    _delete_=True,
    model=[
        dict(type='MultiStepLR', by_epoch=True, milestones=[150, 225],
             gamma=0.1)
    ],
    gamma=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])
