# Demo: a 4-exit MSDNet on Fashion-MNIST (real data, runs on 2 CPU cores in
# under 10 minutes). Scheme: MSDNet (Σ_k CE_k).
#   python tools/train.py configs/demo/msdnet_fashion_mnist.py
_base_ = [
    '../_base_/datasets/fashion_mnist_heldout.py',
    '../_base_/schedules/demo_sgd_3e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='MultiExitClassifier',
    backbone=dict(
        type='MSDNet',
        nBlocks=4,
        stepmode='even',
        step=1,
        base=1,
        nChannels=8,
        growthRate=4,
        grFactor=(1, 2, 4),
        bnFactor=(1, 2, 4),
        prune='max',
        reduction=0.5,
        bottleneck=True,
        stem='cifar'),
    head=dict(
        type='MSDNetExitHead',
        num_classes=10,
        in_channels=None,  # inferred from the backbone
        variant='cifar',
        inter_channels=32,
        loss=dict(type='DenseKDLoss', scheme='msdnet')),
)

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=1, max_keep_ckpts=1))

# Like the reference implementation, MSDNets with fewer blocks than the
# paper's compute finer scales in their last block that no exit reads; DDP
# must be told that those parameters get no gradient.
find_unused_parameters = True
