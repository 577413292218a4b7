# HDKD on the 4-exit ViT-Tiny: learned γ over the CE terms
# and every dense KD term (Eq. 5), the bilevel iteration of Algorithm 1.
#   python tools/train.py configs/hdkd/vit-tiny_cifar100.py
# Baselines, same model and data:
#   configs/msdnet/vit-tiny_cifar100.py (Σ CE)
#   configs/dbt/vit-tiny_cifar100.py (DBT)
# 4 exits: 4 CE + 6 dense KD objectives. With AdamW, the look-ahead is
# θ' = θ − ξ g with ξ the current lr (hypergrad virtual step 'sgd'); the γ
# optimizer (Adam) does not depend on the scale of ∇γ. The JVP pass runs the
# attention on PyTorch's math backend (the fused kernels have no forward-mode
# rule); the training passes keep the fused kernel.
_base_ = ['../msdnet/vit-tiny_cifar100.py']
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
# One scheduler list per optimizer: θ keeps the schedule of
# configs/msdnet/vit-tiny_cifar100.py, γ's lr (ε) stays constant.
param_scheduler = dict(
    _delete_=True,
    model=[
        dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
             end=10, convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', by_epoch=True, begin=10, end=300,
             eta_min=1e-5, convert_to_iter_based=True),
    ],
    gamma=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])
