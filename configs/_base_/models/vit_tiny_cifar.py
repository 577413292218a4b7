# A 4-exit Vision Transformer for 32×32 CIFAR images: MMPretrain's
# VisionTransformer with the ViT-Tiny (DeiT-Ti) widths (192-d tokens, 3 heads,
# MLP 768) and 12 blocks, shrunk for CIFAR: patch size 4 instead of 16, so a
# 32×32 image gives 8×8 = 64 patch tokens + the class token (16 px patches
# would leave 2×2). Exits read the class token after blocks 3, 6, 9 and 12
# (out_indices=(2, 5, 8, 11), out_type='cls_token'); the last one passes the
# backbone's final LayerNorm, the earlier ones do not, so every exit head
# normalises its token itself (norm='LN') before its Linear.
# Attention runs through F.scaled_dot_product_attention (fused kernels, no
# double backward); the HDKD hypergradient does not need one.
model = dict(
    type='MultiExitClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch=dict(embed_dims=192, num_layers=12, num_heads=3,
                  feedforward_channels=768),
        img_size=32,
        patch_size=4,
        out_indices=(2, 5, 8, 11),
        out_type='cls_token',
        drop_path_rate=0.1,
        init_cfg=[
            dict(type='TruncNormal', layer='Linear', std=.02),
            dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
        ]),
    head=dict(
        type='GenericExitHead',
        num_classes=100,
        in_channels=None,  # inferred: [192] * 4
        norm='LN',
        loss=dict(type='DenseKDLoss', scheme='msdnet')))
