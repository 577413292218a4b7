# MSDNet for ImageNet (Huang et al.): 5 exits, 4 scales, `even` steps of 4
# layers (the paper's 23-layer model: 340 ... 1361 MFLOPs per exit, about
# 24 M params). `step=base=7` gives the larger model (616 ... 3254 MFLOPs,
# 62.3 M params). The data preprocessor comes from the dataset config.
model = dict(
    type='MultiExitClassifier',
    backbone=dict(
        type='MSDNet',
        nBlocks=5,
        stepmode='even',
        step=4,
        base=4,
        nChannels=32,
        growthRate=16,
        grFactor=(1, 2, 4, 4),
        bnFactor=(1, 2, 4, 4),
        prune='max',
        reduction=0.5,
        bottleneck=True,
        stem='imagenet'),
    head=dict(
        type='MSDNetExitHead',
        num_classes=1000,
        in_channels=None,  # inferred from the backbone's exit_channels
        variant='imagenet',
        loss=dict(type='DenseKDLoss', scheme='msdnet')))

# Like the reference implementation, MSDNets with fewer blocks than the
# paper's compute finer scales in their last block that no exit reads; DDP
# must be told that those parameters get no gradient.
find_unused_parameters = True
