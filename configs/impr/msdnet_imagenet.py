# Impr (Li et al. 2019, IMTA): gradient equilibrium in the backbone + one-for-all KD from the last exit,
# (1-λ)·CE_k + λ·KD_{K→k} for k < K, CE_K; λ = 0.1 and T = 1 as IMTA's published ImageNet script.
#   python tools/train.py configs/impr/msdnet_imagenet.py
#   tools/dist_train.sh configs/impr/msdnet_imagenet.py 8   (batch 1024 = 128 × 8)
_base_ = ['../msdnet/msdnet_imagenet.py']
model = dict(head=dict(loss=dict(scheme='impr', temperature=1.0, kd_weight=0.1)))
