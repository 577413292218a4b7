# HDKD: learned γ over the CE terms and every dense KD term (Eq. 5), on the
# MSDNet ImageNet setting of configs/msdnet/msdnet_msdnet-5e_8xb128_in1k.py
# with the bilevel iteration of Algorithm 1 (the _bilevel schedule).
#   tools/dist_train.sh configs/hdkd/hdkd_msdnet-5e_8xb128_in1k.py 8   (batch 1024 = 128 × 8)
# (configs/hdkd/msdnet_imagenet.py, the path of the model card, is an alias.)
_base_ = [
    '../_base_/models/msdnet_imagenet.py',
    '../_base_/datasets/imagenet_heldout.py',
    '../_base_/schedules/imagenet_sgd_90e_bilevel.py',
    '../_base_/default_runtime.py',
]
model = dict(
    head=dict(loss=dict(scheme='hdkd', temperature=4.0)),
    loss_weights=dict(
        type='LearnedLossWeights',
        init='ds_like',  # 'dbt_like' | 'ds_like' | 'rand' | 'fixed'
        alpha=0.5))  # α of Eq. 10 (balanced validation loss)
