# timm's ResNet-18 through MMPretrain's TIMMBackbone, one exit per stage.
# features_only=True makes timm return the feature map of every stage named
# by out_indices: its feature_info lists 5 (act1, layer1..layer4, strides
# 2/4/8/16/32); the exits sit on layer1..layer4 (out_indices=(1, 2, 3, 4),
# widths 64/128/256/512, inferred). pretrained=False: nothing is downloaded.
# timm keeps its ImageNet stem (7×7/2 conv + max-pool), so on 32×32 CIFAR
# images the stages run at 8/4/2/1 pixels: 37 MFLOPs instead of the 556 of
# the CIFAR-stem ResNet_CIFAR config (resnet18_cifar.py); this config is the
# architecture-agnostic check "any timm model", not the accurate CIFAR model.
model = dict(
    type='MultiExitClassifier',
    backbone=dict(
        type='TIMMBackbone',
        model_name='resnet18',
        features_only=True,
        pretrained=False,
        out_indices=(1, 2, 3, 4)),
    head=dict(
        type='GenericExitHead',
        num_classes=100,
        in_channels=None,  # inferred from timm's feature_info
        loss=dict(type='DenseKDLoss', scheme='msdnet')))
