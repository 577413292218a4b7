# Demo of the impr scheme on Fashion-MNIST: the MSDNet demo with
# another objective set (see configs/impr/impr_msdnet-8e_1xb128_cifar100.py).
#   python tools/train.py configs/demo/impr_msdnet-4e_1xb128_fashion-mnist.py
_base_ = ['./msdnet_msdnet-4e_1xb128_fashion-mnist.py']
model = dict(
    head=dict(
        # IMTA's inline subnetwork collaboration: exit k > 1's classifier also
        # takes Linear-BN-ReLU of exit k-1's logits (CollaborativeExit).
        inline_collaboration=True,
        loss=dict(scheme='impr', temperature=1.0, kd_weight=0.1)))
