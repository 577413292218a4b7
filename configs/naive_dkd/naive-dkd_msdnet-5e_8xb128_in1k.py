# NaiveDKD (Eq. 4): Σ CE + λ·KD from every exit to every earlier exit, uniform λ = 1, T = 4.
#   python tools/train.py configs/naive_dkd/naive-dkd_msdnet-5e_8xb128_in1k.py
#   tools/dist_train.sh configs/naive_dkd/naive-dkd_msdnet-5e_8xb128_in1k.py 8   (batch 1024 = 128 × 8)
_base_ = ['../msdnet/msdnet_msdnet-5e_8xb128_in1k.py']
model = dict(head=dict(loss=dict(scheme='naive_dkd', temperature=4.0, kd_weight=1.0)))
