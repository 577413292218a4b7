# MSDNet for CIFAR-100 (Huang et al.): the paper's 8-exit, 36-layer model
# (lin_grow, step 1, base 1; 6.86 ... 192.69 MFLOPs per exit, 5.31 M params).
# Set `model.backbone.nBlocks` for the 4/5/6/7-exit variants and
# `model.head.num_classes=10` for CIFAR-10. The data preprocessor comes from
# the dataset config.
model = dict(
    type='MultiExitClassifier',
    backbone=dict(
        type='MSDNet',
        nBlocks=8,
        stepmode='lin_grow',
        step=1,
        base=1,
        nChannels=16,
        growthRate=6,
        grFactor=(1, 2, 4),
        bnFactor=(1, 2, 4),
        prune='max',
        reduction=0.5,
        bottleneck=True,
        stem='cifar'),
    head=dict(
        type='MSDNetExitHead',
        num_classes=100,
        in_channels=None,  # inferred from the backbone's exit_channels
        variant='cifar',
        loss=dict(type='DenseKDLoss', scheme='msdnet')))

# Like the reference implementation, MSDNets with fewer blocks than the
# paper's compute finer scales in their last block that no exit reads; DDP
# must be told that those parameters get no gradient.
find_unused_parameters = True
