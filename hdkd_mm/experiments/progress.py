"""What a running suite prints: a status line per finished run, the
progress bar (MMEngine's ``ProgressBar``, one line per update) and the time
left, estimated from the cost of the runs."""
from typing import Callable, Dict, List, Optional, Tuple

from .spec import Run

__all__ = ['fmt_duration', 'status_line', 'LogLines', 'estimate_left']


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


def status_line(run: Run, result: Optional[Dict], error: Optional[str],
                skipped: bool = False) -> str:
    head = f'{run.label} seed {run.seed}'
    if error:
        return f'{head}: FAILED: {error}'
    test, train = result['test_top1'][-1], result['train_top1'][-1]
    text = (f'{head}: last-exit top-1 {test:.2f} (train {train:.2f}), '
            f'exit-1 {result["test_top1"][0]:.2f}; train '
            f'{fmt_duration(result["train_wall_s"])}, eval '
            f'{fmt_duration(result["eval_wall_s"])}')
    return text + (' [already done]' if skipped else '')


class LogLines:
    """A ``file`` for MMEngine's ``ProgressBar`` that sends each state of
    the bar to the suite's log as a line of its own (the bar redraws its
    line with a carriage return, which the status lines between its
    updates would break)."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log

    def write(self, text: str) -> None:
        text = text.strip('\r\n')
        if text:
            self.log(text)

    def flush(self) -> None:
        pass


def estimate_left(pending_costs: List[float],
                  running: List[Tuple[float, float]], seconds_per_cost: float,
                  parallel: int) -> float:
    """Seconds until the suite is done: the work still to do (each pending
    run's cost, and what the running runs have left, as ``(cost, seconds
    since it started)``), in seconds at the measured ``seconds_per_cost``
    of the runs finished so far (their own wall times, not the suite's),
    shared by ``parallel`` slots."""
    work = sum(c * seconds_per_cost for c in pending_costs) + sum(
        max(c * seconds_per_cost - ran, 0.0) for c, ran in running)
    return work / max(parallel, 1)
