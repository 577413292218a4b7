# timm's MobileNetV3-Large (width 1.0) through MMPretrain's TIMMBackbone, one
# exit per stage. Its feature_info lists 5 features (strides 2/4/8/16/32,
# widths 16/24/40/112/960); the exits sit on the last four (out_indices=
# (1, 2, 3, 4); on 32×32 images at 8/4/2/1 pixels). pretrained=False: nothing
# is downloaded. The squeeze-excitation gates of MobileNetV3 are hard-sigmoids,
# whose backward PyTorch cannot differentiate again (no double backward):
# HDKD's forward-mode hypergradient does not need it (tests/test_backbones.py).
model = dict(
    type='MultiExitClassifier',
    backbone=dict(
        type='TIMMBackbone',
        model_name='mobilenetv3_large_100',
        features_only=True,
        pretrained=False,
        out_indices=(1, 2, 3, 4)),
    head=dict(
        type='GenericExitHead',
        num_classes=100,
        in_channels=None,  # inferred from timm's feature_info
        loss=dict(type='DenseKDLoss', scheme='msdnet')))
