"""A suite runner's subprocesses do not outlive it, and one run folder is
trained by one runner at a time (hdkd_mm/experiments/children.py): SIGTERM
to the runner stops its trainings and records how they ended; a training
left running by a runner killed with SIGKILL keeps the folder's lock, so a
second runner is refused that run instead of training it twice."""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

from hdkd_mm.experiments.children import RunBusy, run_lock
from hdkd_mm.experiments.runner import settle_interrupted
from tool_helpers import REPO, write_tiny_demo_config

# the training step of each run, replaced by a process that says its pid and
# then sleeps (the runner, the lock and the signals are the real ones)
_RUNNER = '''
import os, sys
from hdkd_mm.experiments import runner
from hdkd_mm.experiments.suite import load_suite
SLEEP = ("import os, sys, time; open(sys.argv[1] + '.tmp', 'w').write("
         "str(os.getpid())); os.rename(sys.argv[1] + '.tmp', sys.argv[1]); "
         "time.sleep(300)")
def steps(run):
    pid_file = os.path.join(run.run_dir, 'child.pid')
    return [runner._Step('train', [sys.executable, '-c', SLEEP, pid_file],
                         os.path.join(run.run_dir, 'final.pth'))]
runner._steps = steps
results = runner.run_suite(load_suite(sys.argv[1]))
for run_id, result in sorted(results.items()):
    print('RESULT', run_id, result.get('error'))
'''


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope='module')
def two_run_suite(tmp_path_factory):
    root = tmp_path_factory.mktemp('children')
    configs = [write_tiny_demo_config(root, name=f'{name}.py')
               for name in ('one', 'two')]
    suite = root / 'suite.yaml'
    suite.write_text(
        f'name: children\nwork_root: {root / "runs"}\nseeds: [0]\n'
        'parallel: 2\nthreads: 1\nconfigs:\n' +
        ''.join(f'  - {c}\n' for c in configs))
    script = root / 'runner.py'
    script.write_text(_RUNNER)
    run_dirs = [root / 'runs' / name / 'default' / 'seed0'
                for name in ('one', 'two')]
    return suite, script, run_dirs


def _start_runner(suite, script, run_dirs):
    """Start a runner; returns it and its two trainings' pids."""
    for d in run_dirs:
        if (d / 'child.pid').exists():
            (d / 'child.pid').unlink()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    proc = subprocess.Popen([sys.executable, str(script), str(suite)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120  # imports and two config loads
    while not all((d / 'child.pid').exists() for d in run_dirs):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail('the runner did not start both trainings:\n' +
                        proc.communicate()[0])
        time.sleep(0.2)
    return proc, [int((d / 'child.pid').read_text()) for d in run_dirs]


def test_sigterm_stops_the_trainings(two_run_suite):
    suite, script, run_dirs = two_run_suite
    proc, pids = _start_runner(suite, script, run_dirs)
    assert all(_alive(pid) for pid in pids)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out
    # the runner waited for them: gone, not orphaned
    assert not any(_alive(pid) for pid in pids), out
    for d in run_dirs:
        attempts = json.loads((d / 'timing.json').read_text())['attempts']
        assert attempts[-1]['step'] == 'train'
        assert attempts[-1]['rc'] == -signal.SIGTERM
        assert not (d / 'result.json').exists()


def test_a_surviving_training_keeps_its_run_from_a_second_runner(
        two_run_suite):
    suite, script, run_dirs = two_run_suite
    proc, pids = _start_runner(suite, script, run_dirs)
    try:
        proc.kill()  # SIGKILL: no clean-up; the trainings go on
        proc.communicate(timeout=60)
        assert all(_alive(pid) for pid in pids)
        for d in run_dirs:  # the attempt was recorded before it started
            attempts = json.loads((d / 'timing.json').read_text())[
                'attempts']
            assert 'started_s' in attempts[-1]
            assert 'ended' not in attempts[-1]
        second = subprocess.run(
            [sys.executable, str(script), str(suite)], cwd=REPO,
            env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
            text=True, timeout=120)
        errors = [line for line in second.stdout.splitlines()
                  if line.startswith('RESULT')]
        assert len(errors) == 2, second.stdout + second.stderr
        for line, d in zip(sorted(errors), run_dirs):
            assert f'{d} is in use by another process' in line
            assert f'pid {proc.pid}' in line  # who took the lock
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10  # free once the trainings are gone
    while True:
        try:
            with run_lock(str(run_dirs[0])):
                break
        except RunBusy:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_run_lock_is_exclusive(tmp_path):
    with run_lock(str(tmp_path)) as fd:
        with pytest.raises(RunBusy, match=f'pid {os.getpid()}'):
            with run_lock(str(tmp_path)):
                pass
        # handed to a subprocess, the lock outlives the block
        child = subprocess.Popen([sys.executable, '-c',
                                  'import time; time.sleep(60)'],
                                 pass_fds=(fd,))
    try:
        with pytest.raises(RunBusy, match='is in use'):
            with run_lock(str(tmp_path)):
                pass
    finally:
        child.kill()
        child.wait()
    with run_lock(str(tmp_path)):
        pass
    assert osp.isfile(tmp_path / '.lock')


def test_an_attempt_cut_off_with_its_runner_is_settled(tmp_path):
    """Its wall time runs to the last write to its step's log."""
    (tmp_path / 'logs').mkdir()
    log = tmp_path / 'logs' / 'train.log'
    log.write_text('epoch 1\n')
    start = time.time() - 1000.0
    os.utime(log, (start + 600.0, start + 600.0))
    done = dict(step='train', started_s=start - 5000.0, wall_s=900.0, rc=0,
                ended='2026-01-01T00:00:00')
    cut = dict(step='train', threads=1, started_s=start)
    timing = dict(attempts=[done, cut])
    assert settle_interrupted(timing, str(tmp_path)) == [cut]
    assert cut['interrupted'] is True and cut['rc'] is None
    assert cut['wall_s'] == pytest.approx(600.0, abs=0.01)
    assert done == dict(step='train', started_s=start - 5000.0, wall_s=900.0,
                        rc=0, ended='2026-01-01T00:00:00')
    assert settle_interrupted(timing, str(tmp_path)) == []  # settled once
