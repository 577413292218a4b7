# HDBT: learned γ over the CE terms and the last-exit KD terms.
#   python tools/train.py configs/hdbt/hdbt_msdnet-5e_8xb128_in1k.py
#   tools/dist_train.sh configs/hdbt/hdbt_msdnet-5e_8xb128_in1k.py 8   (batch 1024 = 128 × 8)
_base_ = ['../hdkd/hdkd_msdnet-5e_8xb128_in1k.py']
model = dict(head=dict(loss=dict(scheme='hdbt')))
