# HMSDNet: learned γ over the K cross-entropies only (Eq. 5 with all γ_ij = 0).
#   python tools/train.py configs/hmsdnet/hmsdnet_msdnet-5e_8xb128_in1k.py
#   tools/dist_train.sh configs/hmsdnet/hmsdnet_msdnet-5e_8xb128_in1k.py 8   (batch 1024 = 128 × 8)
_base_ = ['../hdkd/hdkd_msdnet-5e_8xb128_in1k.py']
model = dict(head=dict(loss=dict(scheme='hmsdnet')))
