# MSDNet: Σ_k CE_k, in the CIFAR-10 low-data regime of
# _base_/msdnet_cifar10_lowdata.py (suite configs/experiments/cifar10_lowdata.yaml).
#   python tools/train.py configs/experiments/cifar10/msdnet_msdnet-6e_1xb64_cifar10-1000.py \
#       --cfg-options train_dataloader.dataset.dataset.data_root=DIR ...
_base_ = ['./_base_/msdnet_cifar10_lowdata.py']
model = dict(head=dict(loss=dict(scheme='msdnet')))
