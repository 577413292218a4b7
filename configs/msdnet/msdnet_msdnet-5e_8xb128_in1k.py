# MSDNet scheme (Σ_k CE_k) on ImageNet: the paper's 23-layer, 5-exit model
# (step 4), 50,000 training images held out, batch 1024 (128 × 8 GPUs).
#   tools/dist_train.sh configs/msdnet/msdnet_msdnet-5e_8xb128_in1k.py 8
_base_ = [
    '../_base_/models/msdnet_imagenet.py',
    '../_base_/datasets/imagenet_heldout.py',
    '../_base_/schedules/imagenet_sgd_90e.py',
    '../_base_/default_runtime.py',
]
