# An alias kept for the model card's path: HDKD on ImageNet is
# configs/hdkd/hdkd_msdnet-5e_8xb128_in1k.py (configs/README.md: names). Its
# default work dir is work_dirs/msdnet_imagenet, distinct from the target's.
#   python tools/train.py configs/hdkd/msdnet_imagenet.py
_base_ = ['./hdkd_msdnet-5e_8xb128_in1k.py']
