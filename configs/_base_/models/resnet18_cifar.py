# A 4-exit ResNet-18 for CIFAR-100: MMPretrain's ResNet_CIFAR (3×3 stem,
# no max-pool, so the stages run at 32/16/8/4 pixels) with one exit after
# each of its four stages (out_indices=(0, 1, 2, 3); widths 64/128/256/512).
# Each exit is the generic head: global average pooling + one Linear (the
# widths are inferred from the backbone). 556 MFLOPs and 11.3 M params at the
# last exit (tools/analysis/get_flops.py). The data preprocessor comes from
# the dataset config.
#   Other exits: e.g. out_indices=(1, 3) for 2 exits (the head follows).
#   A heavier exit: head=dict(conv_channels=128) (conv3×3-BN-ReLU before the
#   pooling) and/or hidden_channels=... (a hidden Linear-ReLU after it).
#   ImageNet-sized inputs: backbone=dict(type='ResNet') (7×7 stem + max-pool).
model = dict(
    type='MultiExitClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, out_indices=(0, 1, 2, 3)),
    head=dict(
        type='GenericExitHead',
        num_classes=100,
        in_channels=None,  # inferred: [64, 128, 256, 512]
        loss=dict(type='DenseKDLoss', scheme='msdnet')))
