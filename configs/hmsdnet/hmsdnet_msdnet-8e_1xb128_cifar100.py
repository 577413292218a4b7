# HMSDNet: learned γ over the K cross-entropies only (Eq. 5 with all γ_ij = 0).
#   python tools/train.py configs/hmsdnet/hmsdnet_msdnet-8e_1xb128_cifar100.py
_base_ = ['../hdkd/hdkd_msdnet-8e_1xb128_cifar100.py']
model = dict(head=dict(loss=dict(scheme='hmsdnet')))
