# Demo of HDKD on Fashion-MNIST with the small 4-exit ResNet-18 of
# resnet18_fashion_mnist.py (its Σ CE baseline): dense KD (4 CE + 6 KD
# objectives) with the weights γ learned by the bilevel step on held-out
# batches of 32.
#   python tools/train.py configs/demo/hdkd_resnet18_fashion_mnist.py
_base_ = ['./resnet18_fashion_mnist.py']
model = dict(
    head=dict(loss=dict(scheme='hdkd', temperature=4.0)),
    loss_weights=dict(
        type='LearnedLossWeights',
        init='ds_like',
        alpha=0.5,
        hypergrad='jvp',
        gamma_interval=1))
optim_wrapper = dict(
    constructor='BilevelOptimWrapperConstructor',
    gamma=dict(optimizer=dict(type='Adam', lr=1e-3)))
# The demo schedule (warm-up + cosine) for θ, a constant ε for γ.
param_scheduler = dict(
    _delete_=True,
    model=[
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=100),
        dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=3,
             eta_min=1e-3, convert_to_iter_based=True),
    ],
    gamma=[dict(type='ConstantLR', factor=1.0, by_epoch=True)])
train_cfg = dict(
    _delete_=True,  # `type` replaces the schedule's `by_epoch`
    type='BilevelEpochBasedTrainLoop', max_epochs=3, val_interval=1)
heldout_dataloader = dict(batch_size=32)
