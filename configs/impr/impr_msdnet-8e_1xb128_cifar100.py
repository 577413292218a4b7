# Impr (Li et al. 2019, IMTA): gradient equilibrium in the backbone, inline subnetwork
# collaboration in the head, and one-for-all KD from the last exit:
# (1-λ)·CE_k + λ·KD_{K→k} for k < K, CE_K; λ = 0.1 and T = 1 as IMTA's published ImageNet script.
# One stage, from scratch. IMTA's code trains in two: GE from scratch, then new classifiers +
# ISC with KD on the frozen GE network, whose own last exit is the teacher. Here all three
# train together, and the teacher is the model's current last exit (detached).
#   python tools/train.py configs/impr/impr_msdnet-8e_1xb128_cifar100.py
_base_ = ['../msdnet/msdnet_msdnet-8e_1xb128_cifar100.py']
model = dict(
    head=dict(
        # IMTA's inline subnetwork collaboration: exit k > 1's classifier also
        # takes Linear-BN-ReLU of exit k-1's logits (CollaborativeExit).
        inline_collaboration=True,
        loss=dict(scheme='impr', temperature=1.0, kd_weight=0.1)))
