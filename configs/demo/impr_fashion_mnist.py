# Demo of the impr scheme on Fashion-MNIST: the MSDNet demo with
# another objective set (see configs/impr/msdnet_cifar100.py).
#   python tools/train.py configs/demo/impr_fashion_mnist.py
_base_ = ['./msdnet_fashion_mnist.py']
model = dict(
    head=dict(
        # IMTA's inline subnetwork collaboration: exit k > 1's classifier also
        # takes Linear-BN-ReLU of exit k-1's logits (CollaborativeExit).
        inline_collaboration=True,
        loss=dict(scheme='impr', temperature=1.0, kd_weight=0.1)))
