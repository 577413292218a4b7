"""One-off migration of the archived Fashion-MNIST runs after the config
renames of branch `configs` (issue 14): spec.config and every recorded
config path → the new file, config_digest → the digest of the new resolved
config. Checks, per run, that (1) the recorded digest is the digest of the
OLD config with the run's options (so the archive matches the old files),
(2) the old resolved config with the moved keys mapped equals the new one.
Usage: python migrate_archive.py OLD_REPO_ROOT [--write]"""
import copy, glob, json, os, os.path as osp, sys
from mmengine.config import Config
sys.path.insert(0, '.')
from hdkd_mm.experiments.runner import config_digest

OLD_ROOT = sys.argv[1]
WRITE = '--write' in sys.argv
MOVED = ('hypergrad', 'virtual_step', 'gamma_interval', 'fd_eps',
         'jvp_backend', 'jvp_reuse_forward')
S = ['msdnet', 'impr', 'dbt', 'naive_dkd', 'hmsdnet', 'hdbt', 'hdkd']
MAP = {f'configs/experiments/fashion_mnist/{s}.py':
       f'configs/experiments/fashion_mnist/{s.replace("_", "-")}'
       '_msdnet-6e_1xb64_fashion-mnist100.py' for s in S}


def load(root, path, options):
    cwd = os.getcwd()
    os.chdir(root)
    try:
        cfg = Config.fromfile(path)
        if options:
            cfg.merge_from_dict(dict(options))
        return cfg
    finally:
        os.chdir(cwd)


def migrate(d):
    d = copy.deepcopy(d)
    lw = d.get('model', {}).get('loss_weights')
    if lw:
        moved = {k: lw.pop(k) for k in MOVED if k in lw}
        if moved:
            d['train_cfg'].setdefault('bilevel', {}).update(moved)
    return d


report = []
for run_json in sorted(glob.glob('docs/results/runs/fashion_mnist100/*/*/seed*/run.json') +
                       glob.glob('docs/results/reruns/*/*/*/seed*/run.json')):
    run_dir = osp.dirname(run_json)
    rec = json.load(open(run_json))
    spec = rec['spec']
    old_path = spec['config']
    new_path = MAP[old_path]
    old_cfg = load(OLD_ROOT, old_path, spec['options'])
    new_cfg = load('.', new_path, spec['options'])
    old_digest = config_digest(old_cfg)
    new_digest = config_digest(new_cfg)
    recorded = rec.get('config_digest')
    same = migrate(old_cfg.to_dict()) == new_cfg.to_dict()
    report.append(f'{run_dir}: recorded {recorded} old-config digest '
                  f'{old_digest} ({"matches" if recorded == old_digest else "DIFFERS"}); '
                  f'new {new_digest}; settings {"equal" if same else "DIFFER"}')
    assert same, run_dir
    if not WRITE:
        continue
    for f in glob.glob(osp.join(run_dir, '**', '*.json'), recursive=True):
        text = open(f).read()
        new_text = text.replace(f'"{old_path}"', f'"{new_path}"')
        if recorded == old_digest:
            new_text = new_text.replace(f'"config_digest": "{recorded}"',
                                        f'"config_digest": "{new_digest}"')
        if new_text != text:
            open(f, 'w').write(new_text)
print('\n'.join(report))
