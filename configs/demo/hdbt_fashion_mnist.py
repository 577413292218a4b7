# Demo of the hdbt scheme on Fashion-MNIST: the HDKD demo with another
# objective set (see configs/hdbt/msdnet_cifar100.py).
#   python tools/train.py configs/demo/hdbt_fashion_mnist.py
_base_ = ['./hdkd_fashion_mnist.py']
model = dict(head=dict(loss=dict(scheme='hdbt')))
