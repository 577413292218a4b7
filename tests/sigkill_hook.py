"""A hook that kills its own training process with SIGKILL at a set point,
for the crash-safety tests (tests/test_crash_resume.py). Imported by the
test configs through ``custom_imports``; inactive unless the environment
variable ``HDKD_TEST_SIGKILL`` is set:

* ``iter:N``: right after the N-th training iteration of this process
  (1-based, counted from the first iteration of the run, so a resumed run
  counts on from its checkpoint);
* ``save:N``: while the N-th checkpoint file of this process is written,
  after half of its bytes are on disk (what a kill in the middle of
  ``torch.save``'s write leaves behind).
"""
import os
import signal

from mmengine.fileio import LocalBackend
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class SigkillHook(Hook):
    priority = 'LOWEST'  # after every other hook of the iteration

    def __init__(self):
        spec = os.environ.get('HDKD_TEST_SIGKILL', '')
        self.kind, _, n = spec.partition(':')
        self.n = int(n) if n else 0

    def before_train(self, runner):
        if self.kind != 'save':
            return
        put, count = LocalBackend.put, [0]

        def put_then_die(backend, obj, filepath):
            if '.pth' not in str(filepath):
                return put(backend, obj, filepath)
            count[0] += 1
            if count[0] < self.n:
                return put(backend, obj, filepath)
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
                os.fsync(f.fileno())
            _die()

        LocalBackend.put = put_then_die

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if self.kind == 'iter' and runner.iter + 1 == self.n:
            _die()
