"""Suite files: a grid of (config × override set × seed) training runs, read
from YAML or a ``.py`` file, checked, and expanded into :class:`Run` objects.

A suite file (YAML shown; a ``.py`` file defines the same names as
top-level variables)::

    name: fashion_mnist_lowdata          # required; names the output folder
    description: ...                     # free text, copied into the report
    work_root: work_dirs/experiments/fmnist   # where the run folders go
    out_dir: work_dirs/experiments/fmnist/suites/fashion_mnist_lowdata
                                         # tables/plots (default:
                                         # WORK_ROOT/suites/NAME)
    seeds: [0, 1, 2]                     # required
    seed_keys: [randomness.seed]         # config keys set to the seed
    parallel: 2                          # runs at a time (default 1)
    threads: null                        # OpenMP threads per run (default:
                                         # CPU cores // parallel, >= 1)
    epochs: null                         # override the configs' epochs
    options: {}                          # --cfg-options of every run
    data_root: null                      # the data folder, put in place of
                                         # {data_root} in option values
                                         # (run_suite --data-root DIR wins)
    configs: [configs/a.py, configs/b.py]   # grid: every config × every
                                            # override set defined (or
                                            # `default` if none is); an
                                            # entry may be {path: ...,
                                            # name: ...} (name default:
                                            # the file's stem)
    grid:                                # or explicit groups (not both):
      - configs: [configs/hdkd.py]
        overrides: [default, rand]       # names of override sets
        seeds: [0, 1, 2]                 # optional, per group
    overrides:                           # named override sets
      default: {}                        # (implicit when absent)
      rand: {model.loss_weights.init: rand}
      fixed:                             # long form: label, needs, options
        label: hdkd_fixed
        needs: hdkd/default/seed0        # a run of this work root; its
                                         # final checkpoint is {needs}, its
                                         # final γ ({objective: γ}, JSON)
                                         # {needs_gamma}
        options: {model.loss_weights.init: fixed,
                  model.loss_weights.path: '{needs_gamma}'}
    labels: {hdkd+rand: rand}            # rename cells (default label:
                                         # STEM, or STEM+OVERRIDE)
    baselines: [msdnet]                  # paired-difference tables vs these
    claims:                              # claims.md: paired effect a − b,
      - claim: DBT lifts exit 1          # 95% t-interval over seeds, and a
        a: dbt                           # verdict by a fixed rule (see
        b: msdnet                        # hdkd_mm/experiments/verdict.py)
        exit: first                      # first | last | mean | K (1-based)
        expect: '+'                      # '+' (a > b), '-' (a < b), '='
        margin: 1.0                      # (|a − b| < margin); points
        paper: '+6.48 (CIFAR(150), top-5)'   # the paper's effect: its
                                         # smallest signed number is the
                                         # one the rule tests against
    report_by: override                  # optional: one report per override
                                         # set (OUT/<override>/), cells
                                         # labelled by config name
    budget_points: [2.5, 5.0]            # MFLOPs rows of the budgeted table
    publish: docs/results.md             # default --doc target (optional)
    archive: docs/results/runs/fmnist    # optional: keep every finished
                                         # run's small files here (to
                                         # commit), restore them in a fresh
                                         # clone (hdkd_mm/experiments/
                                         # archive.py)

A value may hold ``{data_root}``, e.g. ``train_dataloader.dataset.dataset.
data_root: '{data_root}'``: the run spec (``run.json``, what a reused or
archived run is checked against) keeps the placeholder, and only the
commands that train and evaluate get the folder, so archived runs restore on
any machine, wherever its data lie. A run to train without a data folder is
an error that names the fix.

A run is identified by ``<config name>/<override name>/seed<k>`` (its folder
under ``work_root``), so suites that share a ``work_root`` share identical
runs: a run finished by one suite is reused (skipped) by the other. A run
folder records its spec (``run.json``); a folder made with other settings is
an error rather than silently reused.
"""
import os
import os.path as osp
from typing import Any, Dict, Optional

from . import sections as check
from .spec import DATA_ROOT, Run, Suite, SuiteError

__all__ = ['SuiteError', 'Run', 'Suite', 'load_suite', 'DATA_ROOT']


def load_suite(path: str, check_configs: bool = True,
               data_root: Optional[str] = None) -> Suite:
    """Read and check a suite file, one section at a time
    (:mod:`~hdkd_mm.experiments.sections`); expand its runs. ``data_root``
    (the command line's ``--data-root``) wins over the file's.

    Raises:
        SuiteError: unknown keys, missing config files, bad values.
    """
    data = _read_file(path)
    where = path
    check.check_keys(where, data, check.TOP_KEYS)
    name, seeds = check.read_name_and_seeds(where, data)
    parallel, threads, epochs = check.read_resources(where, data)
    work_root = data.get('work_root') or osp.join('work_dirs', 'experiments',
                                                  name)
    options = check.read_options(f'{where}: options', data.get('options'))
    overrides = check.read_overrides(where, data.get('overrides'))
    common = dict(seeds=seeds, options=options, work_root=work_root,
                  seed_keys=check.read_seed_keys(
                      where, data.get('seed_keys', ['randomness.seed'])),
                  check_configs=check_configs)
    runs = check.expand_runs(where, data, check.read_groups(where, data),
                             overrides, common)
    labels = check.rename_cells(where, runs, data.get('labels'))
    report_by = data.get('report_by')
    if report_by not in (None, 'override'):
        raise SuiteError(f"{where}: report_by must be 'override' or null, "
                         f'got {report_by!r}.')
    # with report_by: override, a report's cells are the config names
    cells = (labels + sorted({r.stem for r in runs})
             if report_by == 'override' else labels)
    root = check.read_data_root(where, data.get('data_root'), data_root, runs)
    for run in runs:
        run.data_root = root
    suite = Suite(
        path=path, name=name,
        description=str(data.get('description') or '').strip(),
        work_root=work_root,
        out_dir=data.get('out_dir') or osp.join(work_root, 'suites', name),
        seeds=seeds, seed_keys=common['seed_keys'], parallel=parallel,
        threads=threads, epochs=epochs, options=options, overrides=overrides,
        runs=runs,
        baselines=check.read_baselines(where, data.get('baselines'), labels,
                                       cells),
        budget_points=check.read_budget_points(where,
                                               data.get('budget_points')),
        publish=data.get('publish'), report_by=report_by,
        claims=check.read_claims(where, data.get('claims'), labels, cells),
        notes=str(data.get('notes') or '').strip(),
        archive=check.read_archive(where, data.get('archive')),
        data_root=root)
    check.check_needs(suite)
    return suite


def _read_file(path: str) -> Dict[str, Any]:
    if not osp.isfile(path):
        raise SuiteError(f'Suite file {path!r} does not exist.')
    ext = osp.splitext(path)[1].lower()
    if ext in ('.yaml', '.yml'):
        import yaml
        with open(path) as f:
            try:
                data = yaml.safe_load(f)
            except yaml.YAMLError as err:
                raise SuiteError(f'{path}: not valid YAML: {err}') from None
    elif ext == '.py':
        namespace: Dict[str, Any] = {}
        with open(path) as f:
            code = compile(f.read(), path, 'exec')
        exec(code, namespace)  # noqa: S102 (a suite file is a config)
        data = {k: v for k, v in namespace.items()
                if not k.startswith('_') and not callable(v)
                and not isinstance(v, type(os))}
    else:
        raise SuiteError(f'{path}: a suite file is .yaml, .yml or .py, '
                         f'not {ext or "(no extension)"!r}.')
    if not isinstance(data, dict):
        raise SuiteError(f'{path}: the suite must be a mapping of keys '
                         f'(name, seeds, configs, ...), got '
                         f'{type(data).__name__}.')
    return data
