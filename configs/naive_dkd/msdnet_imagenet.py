# NaiveDKD (Eq. 4): Σ CE + λ·KD from every exit to every earlier exit, uniform λ = 1, T = 4.
#   python tools/train.py configs/naive_dkd/msdnet_imagenet.py
#   tools/dist_train.sh configs/naive_dkd/msdnet_imagenet.py 8   (batch 1024 = 128 × 8)
_base_ = ['../msdnet/msdnet_imagenet.py']
model = dict(head=dict(loss=dict(scheme='naive_dkd', temperature=4.0, kd_weight=1.0)))
