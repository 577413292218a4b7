"""What a suite file becomes: the :class:`Suite`, its :class:`Run` objects
(one training run each), and the error of a suite that cannot be run. The
file format is documented in :mod:`hdkd_mm.experiments.suite`."""
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = ['SuiteError', 'Run', 'Suite', 'DATA_ROOT']

#: The placeholder of option values replaced by the suite's data folder.
DATA_ROOT = '{data_root}'


class SuiteError(ValueError):
    """A suite file that cannot be run (the message says why and where)."""


@dataclass
class Run:
    """One training run of a suite."""
    config: str  # path as given (relative to the current directory)
    override: str  # override set name
    seed: int
    label: str  # cell label (the column of the tables)
    options: Dict[str, Any]  # --cfg-options (needs already substituted)
    needs: Optional[str] = None  # run id whose final checkpoint is used
    needs_files: List[str] = field(default_factory=list)  # files of it read
    name: str = ''  # the config's name in run ids (default: its stem)
    run_dir: str = ''
    work_root: str = ''
    cost: float = 1.0  # relative cost estimate (scheduling order)
    # filled in by runner.plan_runs:
    train_options: Dict[str, Any] = field(default_factory=dict)
    max_epochs: int = 0
    full_spec: Dict[str, Any] = field(default_factory=dict)
    config_digest: str = ''  # of the resolved config (records.config_digest)
    channels_last: bool = False  # its memory layout (records.EXECUTION_KEYS)
    data_root: Optional[str] = None  # what {data_root} stands for

    def uses_data_root(self) -> bool:
        return any(isinstance(v, str) and DATA_ROOT in v
                   for v in self.options.values())

    def command_options(self, options: Dict[str, Any]) -> Dict[str, Any]:
        """``options`` (the run's own or its ``train_options``) as the
        commands get them: ``{data_root}`` replaced by the data folder.

        Raises:
            SuiteError: a value uses ``{data_root}`` and no folder is given.
        """
        out = {}
        for key, val in options.items():
            if isinstance(val, str) and DATA_ROOT in val:
                if self.data_root is None:
                    raise SuiteError(
                        f'run {self.run_id}: option {key}={val!r} needs the '
                        'data folder, and none is given: pass run_suite '
                        '--data-root DIR, or set `data_root: DIR` in the '
                        'suite file.')
                val = val.replace(DATA_ROOT, self.data_root)
            out[key] = val
        return out

    @property
    def stem(self) -> str:
        return self.name or osp.splitext(osp.basename(self.config))[0]

    @property
    def run_id(self) -> str:
        return f'{self.stem}/{self.override}/seed{self.seed}'

    def spec(self) -> Dict[str, Any]:
        """What must match for a run folder to be reused."""
        return dict(config=osp.normpath(self.config), override=self.override,
                    seed=self.seed, options=self.options, needs=self.needs)


@dataclass
class Suite:
    path: str
    name: str
    description: str
    work_root: str
    out_dir: str
    seeds: List[int]
    seed_keys: List[str]
    parallel: int
    threads: int
    epochs: Optional[int]
    options: Dict[str, Any]
    overrides: Dict[str, Dict[str, Any]]
    runs: List[Run] = field(default_factory=list)
    baselines: List[str] = field(default_factory=list)
    budget_points: List[float] = field(default_factory=list)
    publish: Optional[str] = None
    notes: str = ''
    report_by: Optional[str] = None
    claims: List[Dict[str, Any]] = field(default_factory=list)
    archive: Optional[str] = None
    data_root: Optional[str] = None

    def labels(self) -> List[str]:
        """Cell labels in suite order."""
        out = []
        for run in self.runs:
            if run.label not in out:
                out.append(run.label)
        return out
