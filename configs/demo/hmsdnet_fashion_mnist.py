# Demo of the hmsdnet scheme on Fashion-MNIST: the HDKD demo with another
# objective set (see configs/hmsdnet/msdnet_cifar100.py).
#   python tools/train.py configs/demo/hmsdnet_fashion_mnist.py
_base_ = ['./hdkd_fashion_mnist.py']
model = dict(head=dict(loss=dict(scheme='hmsdnet')))
