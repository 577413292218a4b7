# HMSDNet: learned γ over the K cross-entropies only (Eq. 5 with all γ_ij = 0).
#   python tools/train.py configs/hmsdnet/msdnet_imagenet.py
#   tools/dist_train.sh configs/hmsdnet/msdnet_imagenet.py 8   (batch 1024 = 128 × 8)
_base_ = ['../hdkd/msdnet_imagenet.py']
model = dict(head=dict(loss=dict(scheme='hmsdnet')))
