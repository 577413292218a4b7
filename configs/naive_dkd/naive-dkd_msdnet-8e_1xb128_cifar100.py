# NaiveDKD (Eq. 4): Σ CE + λ·KD from every exit to every earlier exit, uniform λ = 1, T = 4.
#   python tools/train.py configs/naive_dkd/naive-dkd_msdnet-8e_1xb128_cifar100.py
_base_ = ['../msdnet/msdnet_msdnet-8e_1xb128_cifar100.py']
model = dict(head=dict(loss=dict(scheme='naive_dkd', temperature=4.0, kd_weight=1.0)))
