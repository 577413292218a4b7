# HDBT: learned γ over the CE terms and the last-exit KD terms.
#   python tools/train.py configs/hdbt/msdnet_imagenet.py
#   tools/dist_train.sh configs/hdbt/msdnet_imagenet.py 8   (batch 1024 = 128 × 8)
_base_ = ['../hdkd/msdnet_imagenet.py']
model = dict(head=dict(loss=dict(scheme='hdbt')))
