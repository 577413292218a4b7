# HDKD: learned γ over the CE terms and every dense KD term (Eq. 5), on the
# MSDNet CIFAR-100 setting of configs/msdnet/msdnet_msdnet-8e_1xb128_cifar100.py
# with the bilevel iteration of Algorithm 1 (the _bilevel schedule).
#   python tools/train.py configs/hdkd/hdkd_msdnet-8e_1xb128_cifar100.py
_base_ = [
    '../_base_/models/msdnet_cifar.py',
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
