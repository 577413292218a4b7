"""Experiment suites: grids of training runs (config × override set × seed)
run N at a time, resumable, evaluated per exit (test and training subset)
and in budgeted mode, and summarised as markdown tables and plots
(``tools/experiments/run_suite.py``)."""
from .options import epoch_options
from .suite import Run, Suite, SuiteError, load_suite

__all__ = ['Run', 'Suite', 'SuiteError', 'epoch_options', 'load_suite']
