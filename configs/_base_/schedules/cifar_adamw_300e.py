# The from-scratch ViT recipe for small data sets (as in Lee et al. 2021,
# "Vision Transformer for Small-Size Datasets") on the CIFAR-100 data and
# epochs of cifar_sgd_300e.py: a ViT trained from scratch does not train well
# with the CNNs' SGD at lr 0.1, so AdamW, lr 1e-3 at batch 128, weight decay
# 0.05 (none on norms, biases, position embedding and class token), 10 linear
# warm-up epochs, then cosine decay to 1e-5. No gradient clipping: HDKD's
# look-ahead θ' = θ − ξg assumes the step uses g itself.
_base_ = ['./cifar_sgd_300e.py']
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05,
        betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=10,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=10, end=300,
         eta_min=1e-5, convert_to_iter_based=True),
]
