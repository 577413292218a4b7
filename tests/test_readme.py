"""The README's "Your own dataset" config, as printed there, trains: it is
read from between its markers, pointed at a tiny folder of JPEGs in
MMPretrain's CustomDataset layout, and trained one epoch (HDKD, so the
held-out split feeds the γ step) and validated on its carved-out test split."""
import os.path as osp
import re

from tiny_data import CIFAR10_CLASSES, write_cifar10_jpg
from tool_helpers import REPO, run_tool


def _readme_block(marker):
    with open(osp.join(REPO, 'README.md')) as f:
        text = f.read()
    block = text.split(f'<!-- {marker} -->')[1].split(f'<!-- /{marker} -->')[0]
    return re.search(r'```python\n(.*?)```', block, re.S).group(1)


def _replace(text, old, new):
    assert old in text, f'the README config no longer has {old!r}'
    return text.replace(old, new)


def test_readme_own_dataset_config_trains_on_a_class_folder(tmp_path):
    config = _readme_block('own-dataset-config')
    root = write_cifar10_jpg(tmp_path / 'my_images', per_class=12)
    # In a clone the base is a path (`hdkd_mm::` reads an installed package,
    # which test_packaging.py covers); the data are 10 classes x 12 images.
    config = _replace(config, "'hdkd_mm::", f"'{REPO}/configs/")
    config = _replace(config, "'data/my_images'", repr(root))
    config = _replace(config, 'num_classes = 5',
                      f'num_classes = {len(CIFAR10_CLASSES)}')
    config = _replace(config, 'heldout_size=500, test_size=1000',
                      'heldout_size=20, test_size=20')
    path = tmp_path / 'my_hdkd.py'
    path.write_text(config)
    work = tmp_path / 'work'
    small = ['train_dataloader.batch_size=8', 'heldout_dataloader.batch_size=8',
             'val_dataloader.batch_size=8', 'test_dataloader.batch_size=8']
    out = run_tool('tools/train.py', path, '--work-dir', work,
                   '--cfg-options', 'train_cfg.max_epochs=1',
                   'model.backbone.nBlocks=2', *small)
    # validation runs on the carved-out test split (val_dataloader)
    assert 'Epoch(val) [1]' in out and 'exit2/top1' in out
