# HDKD on the timm MobileNetV3-Large: learned γ over the CE terms
# and every dense KD term (Eq. 5), the bilevel iteration of Algorithm 1.
#   python tools/train.py configs/hdkd/hdkd_timm-mobilenetv3_1xb128_cifar100.py
# Baselines, same model and data:
#   configs/msdnet/msdnet_timm-mobilenetv3_1xb128_cifar100.py (Σ CE)
#   configs/dbt/dbt_timm-mobilenetv3_1xb128_cifar100.py (DBT)
# 4 exits: 4 CE + 6 dense KD objectives. MobileNetV3's hard-sigmoid has no
# double backward; the forward-mode hypergradient needs none.
_base_ = [
    '../_base_/models/timm_mobilenetv3_cifar.py',
    '../_base_/datasets/cifar100_heldout.py',
    '../_base_/schedules/cifar_sgd_300e_bilevel.py',
    '../_base_/default_runtime.py',
]
model = dict(
    head=dict(loss=dict(scheme='hdkd', temperature=4.0)),
    loss_weights=dict(
        type='LearnedLossWeights',
        init='ds_like',  # 'dbt_like' | 'ds_like' | 'rand' | 'fixed'
        alpha=0.5))  # α of Eq. 10 (balanced validation loss)
