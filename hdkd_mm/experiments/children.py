"""Subprocesses that do not outlive the runner that started them, and a run
folder that one runner trains at a time.

A suite or selection trains each run in a subprocess (``tools/train.py``).
Python's default for SIGTERM (``kill PID``, a scheduler's time limit) ends
the runner at once, without stopping those subprocesses: they kept training
as orphans, writing checkpoints into their run folders, where the next
runner would start a second training of the same run. So:

- :func:`run_child` starts every subprocess and remembers it while it runs;
- :func:`stopping_children` (around the runner's loop, in the main thread)
  turns SIGTERM into ``SystemExit`` and, when the loop ends by any exception
  (SIGTERM, Ctrl-C, an error), terminates the remembered subprocesses,
  waits for them, and keeps new ones from starting;
- :func:`run_lock` takes an exclusive lock on ``RUN/.lock`` for the time a
  runner works on a run, and :func:`run_child` hands the lock to the
  subprocess (``pass_fds``), so a training that survives its runner (SIGKILL
  cannot be caught) still holds it: a second runner is refused that run
  instead of training it twice at once.
"""
import contextlib
import errno
import os
import os.path as osp
import signal
import subprocess
import threading
from typing import IO, Dict, Iterator, List, Optional, Sequence

try:
    import fcntl
except ImportError:  # not POSIX (Windows): run folders are not locked
    fcntl = None

__all__ = ['REPO', 'child_env', 'RunBusy', 'run_lock', 'run_child',
           'stop_children', 'stopping_children']

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

_live: List[subprocess.Popen] = []
_guard = threading.Lock()
_stopping = threading.Event()


def child_env(threads: int) -> Dict[str, str]:
    """The environment of a training subprocess: this one, with
    ``threads`` OpenMP/MKL/OpenBLAS threads and the repository first on
    ``PYTHONPATH``."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    path = env.get('PYTHONPATH', '')
    env['PYTHONPATH'] = REPO + (os.pathsep + path if path else '')
    return env


class RunBusy(RuntimeError):
    """The run folder's lock is held by another process."""


@contextlib.contextmanager
def run_lock(run_dir: str) -> Iterator[Optional[int]]:
    """Hold the exclusive lock of ``run_dir`` (``RUN/.lock``, which records
    the pid of the process that took it); yields its file descriptor (None
    where ``fcntl`` does not exist: no lock).

    Raises:
        RunBusy: another process holds it (a runner, or a training that its
            killed runner left running).
    """
    if fcntl is None:
        yield None
        return
    path = osp.join(run_dir, '.lock')
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = os.read(fd, 32).decode(errors='replace').strip() or '?'
        os.close(fd)
        if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise
        raise RunBusy(
            f'{run_dir} is in use by another process (its lock {path} was '
            f'taken by pid {holder}; a training that outlived a killed '
            'runner holds it too): wait for that process to end, or stop '
            'it, then run again.') from None
    os.ftruncate(fd, 0)
    os.write(fd, f'{os.getpid()}\n'.encode())
    try:
        yield fd
    finally:
        os.close(fd)  # a subprocess still holding it keeps the lock


def run_child(cmd: Sequence[str], env: Optional[Dict[str, str]] = None,
              stdout: Optional[IO] = None, cwd: Optional[str] = None,
              pass_fds: Sequence[Optional[int]] = ()) -> int:
    """Run ``cmd`` (stderr into ``stdout``) to its end; returns its exit
    code (negative: the signal that ended it).

    Raises:
        RuntimeError: the runner is stopping (no new subprocess starts).
    """
    with _guard:
        if _stopping.is_set():
            raise RuntimeError('not started: the runner is stopping')
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=stdout,
                                stderr=subprocess.STDOUT,
                                pass_fds=tuple(fd for fd in pass_fds
                                               if fd is not None))
        _live.append(proc)
    try:
        return proc.wait()
    finally:
        with _guard:
            _live.remove(proc)


def stop_children(grace_s: float = 20.0) -> int:
    """Keep new subprocesses from starting, SIGTERM the running ones, SIGKILL
    those still alive after ``grace_s``; returns how many were running."""
    with _guard:
        _stopping.set()
        procs = list(_live)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return len(procs)


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def stopping_children() -> Iterator[None]:
    """Stop the subprocesses of :func:`run_child` when the block ends by an
    exception; in the main thread, SIGTERM ends the block as ``SystemExit``
    (exit code 143) instead of ending the process on the spot."""
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, _sigterm) if main else None
    _stopping.clear()
    try:
        yield
    except BaseException:
        if main:  # a second SIGTERM must not cut the clean-up short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_children()
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, old)
