# Demo of the dbt scheme on Fashion-MNIST: the MSDNet demo with
# another objective set (see configs/dbt/dbt_msdnet-8e_1xb128_cifar100.py).
#   python tools/train.py configs/demo/dbt_msdnet-4e_1xb128_fashion-mnist.py
_base_ = ['./msdnet_msdnet-4e_1xb128_fashion-mnist.py']
model = dict(head=dict(loss=dict(scheme='dbt', temperature=4.0, kd_weight=1.0)))
