# HDKD on the timm ResNet-18: learned γ over the CE terms
# and every dense KD term (Eq. 5), the bilevel iteration of Algorithm 1.
#   python tools/train.py configs/hdkd/hdkd_timm-resnet18_1xb128_cifar100.py
# Baselines, same model and data:
#   configs/msdnet/msdnet_timm-resnet18_1xb128_cifar100.py (Σ CE)
#   configs/dbt/dbt_timm-resnet18_1xb128_cifar100.py (DBT)
# 4 exits: 4 CE + 6 dense KD objectives, each with its learned γ.
_base_ = [
    '../_base_/models/timm_resnet18_cifar.py',
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
