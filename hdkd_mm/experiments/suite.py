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
        b: msdnet                        # hdkd_mm/experiments/report.py)
        exit: first                      # first | last | mean | K (1-based)
        expect: '+'                      # '+' (a > b), '-' (a < b), '='
        margin: 1.0                      # (|a − b| < margin); points
        paper: '+6.48 (CIFAR(150), top-5)'   # free text, shown beside
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

A run is identified by ``<config name>/<override name>/seed<k>`` (its folder
under ``work_root``), so suites that share a ``work_root`` share identical
runs: a run finished by one suite is reused (skipped) by the other. A run
folder records its spec (``run.json``); a folder made with other settings is
an error rather than silently reused.
"""
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = ['SuiteError', 'Run', 'Suite', 'load_suite', 'format_options',
           'epoch_options']

TOP_KEYS = {
    'name', 'description', 'work_root', 'out_dir', 'seeds', 'seed_keys',
    'parallel', 'threads', 'epochs', 'options', 'configs', 'grid',
    'overrides', 'labels', 'baselines', 'budget_points', 'publish', 'notes',
    'report_by', 'claims', 'archive'
}
CLAIM_KEYS = {'claim', 'a', 'b', 'exit', 'expect', 'margin', 'paper'}
GROUP_KEYS = {'configs', 'overrides', 'seeds'}
OVERRIDE_KEYS = {'label', 'needs', 'options'}
_RUN_ID = re.compile(r'^[A-Za-z0-9_.+-]+/[A-Za-z0-9_.+-]+/seed-?\d+$')
_NAME = re.compile(r'^[A-Za-z0-9_.+-]+$')


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
    config_digest: str = ''  # of the resolved config (runner.config_digest)

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

    def labels(self) -> List[str]:
        """Cell labels in suite order."""
        out = []
        for run in self.runs:
            if run.label not in out:
                out.append(run.label)
        return out


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


def _check_keys(where: str, data: Dict, allowed: set) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SuiteError(f'{where}: unknown key(s) {unknown}; allowed: '
                         f'{sorted(allowed)}.')


def _int_list(where: str, value, what: str) -> List[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise SuiteError(f'{where}: {what} must be a non-empty list of '
                         f'integers, got {value!r}.')
    if len(set(value)) != len(value):
        raise SuiteError(f'{where}: {what} has duplicates: {value!r}.')
    return list(value)


def _options(where: str, value) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SuiteError(f'{where}: options must be a mapping of dotted '
                         f'config keys to values, got {value!r}.')
    for key, val in value.items():
        if not isinstance(key, str) or not key:
            raise SuiteError(f'{where}: option key {key!r} is not a string.')
        try:
            format_value(val)
        except ValueError as err:
            raise SuiteError(f'{where}: option {key}: {err}') from None
    return dict(value)


def format_value(value) -> str:
    """A value as MMEngine's ``DictAction`` reads it back from the command
    line (``key=value``)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if not value or any(c in value for c in ',[]()"\'= '):
            raise ValueError(
                f'the string {value!r} cannot be passed as a command-line '
                'config option (empty, or has a comma, bracket, quote, '
                'space or "=").')
        if value.lower() in ('true', 'false', 'none'):
            raise ValueError(f'the string {value!r} would be read back as '
                             'a bool/None.')
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError(f'the string {value!r} would be read back as a '
                         'number.')
    if isinstance(value, (list, tuple)):
        inner = ','.join(format_value(v) for v in value)
        if isinstance(value, tuple):
            return f'({inner},)' if len(value) == 1 else f'({inner})'
        return f'[{inner}]'
    raise ValueError(
        f'{type(value).__name__} values cannot be passed as command-line '
        'config options: use one dotted key per leaf '
        '(e.g. model.loss_weights.init: rand).')


def format_options(options: Dict[str, Any]) -> List[str]:
    """``['key=value', ...]`` for ``--cfg-options``."""
    return [f'{k}={format_value(v)}' for k, v in options.items()]


def epoch_options(cfg, epochs: int) -> Dict[str, Any]:
    """Dotted options that change a loaded config's schedule to ``epochs``
    epochs with validation only at the end: ``train_cfg.max_epochs``,
    ``train_cfg.val_interval``, every epoch-based scheduler ``end`` equal to
    the old ``max_epochs`` (or unset), and ``MultiStepLR`` milestones scaled
    in proportion."""
    old = int(cfg.train_cfg.get('max_epochs'))
    opts: Dict[str, Any] = {'train_cfg.max_epochs': int(epochs),
                            'train_cfg.val_interval': int(epochs)}
    sched = cfg.get('param_scheduler')
    groups = []
    if isinstance(sched, dict) and 'type' not in sched:
        groups = [(f'param_scheduler.{k}', v) for k, v in sched.items()]
    elif sched is not None:
        groups = [('param_scheduler', sched)]
    for prefix, items in groups:
        if isinstance(items, dict):
            items, single = [items], True
        else:
            single = False
        for i, s in enumerate(items):
            key = prefix if single else f'{prefix}.{i}'
            if not s.get('by_epoch', True):
                continue
            end = s.get('end')
            if end is not None and int(end) == old:
                opts[f'{key}.end'] = int(epochs)
            if s.get('type') == 'MultiStepLR' and s.get('milestones'):
                opts[f'{key}.milestones'] = [
                    max(1, round(m * epochs / old)) for m in s['milestones']]
    return opts


def _override_sets(where: str, raw) -> Dict[str, Dict[str, Any]]:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise SuiteError(f'{where}: overrides must be a mapping of names to '
                         f'option sets, got {raw!r}.')
    out = {}
    for name, body in raw.items():
        w = f'{where}: override set {name!r}'
        if not isinstance(name, str) or not _NAME.match(name):
            raise SuiteError(f'{w}: names may use letters, digits and '
                             '_ . + - only.')
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise SuiteError(f'{w}: must be a mapping, got {body!r}.')
        long_form = bool(set(body) & OVERRIDE_KEYS) and set(body) <= \
            OVERRIDE_KEYS
        if long_form:
            needs = body.get('needs')
            if needs is not None and (not isinstance(needs, str)
                                      or not _RUN_ID.match(needs)):
                raise SuiteError(
                    f'{w}: needs must be a run id CONFIG_STEM/OVERRIDE/seedK '
                    f'(e.g. hdkd/default/seed0), got {needs!r}.')
            out[name] = dict(label=body.get('label'), needs=needs,
                             options=_options(w, body.get('options')))
        else:
            out[name] = dict(label=None, needs=None, options=_options(w, body))
    out.setdefault('default', dict(label=None, needs=None, options={}))
    return out


#: Placeholders of a run's options → the file of the needed run they name.
NEEDS_FILES = {'{needs}': 'final.pth', '{needs_gamma}': 'gamma.json'}


def _substitute(options: Dict[str, Any], needs_dir: Optional[str],
                where: str):
    """Options with the ``{needs*}`` placeholders replaced by the needed
    run's files; returns ``(options, files used)``."""
    out, used = {}, []
    for key, val in options.items():
        for mark, fname in NEEDS_FILES.items():
            if isinstance(val, str) and mark in val:
                if needs_dir is None:
                    raise SuiteError(
                        f'{where}: option {key} uses {mark} but the '
                        'override set has no `needs`.')
                path = osp.join(needs_dir, fname)
                val = val.replace(mark, path)
                used.append(path)
        out[key] = val
    return out, used


def load_suite(path: str, check_configs: bool = True) -> Suite:
    """Read and check a suite file; expand its runs.

    Raises:
        SuiteError: unknown keys, missing config files, bad values.
    """
    data = _read_file(path)
    where = path
    _check_keys(where, data, TOP_KEYS)
    name = data.get('name')
    if not isinstance(name, str) or not _NAME.match(name or ''):
        raise SuiteError(f'{where}: `name` is required (letters, digits, '
                         f'_ . + -), got {name!r}.')
    if 'seeds' not in data:
        raise SuiteError(f'{where}: `seeds` is required (a list of ints).')
    seeds = _int_list(where, data['seeds'], 'seeds')
    seed_keys = data.get('seed_keys', ['randomness.seed'])
    if isinstance(seed_keys, str):
        seed_keys = [seed_keys]
    if not isinstance(seed_keys, list) or not all(
            isinstance(k, str) and k for k in seed_keys):
        raise SuiteError(f'{where}: seed_keys must be a list of dotted '
                         f'config keys, got {seed_keys!r}.')
    parallel = data.get('parallel', 1)
    if not isinstance(parallel, int) or parallel < 1:
        raise SuiteError(f'{where}: parallel must be an int >= 1, got '
                         f'{parallel!r}.')
    threads = data.get('threads')
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // parallel)
    if not isinstance(threads, int) or threads < 1:
        raise SuiteError(f'{where}: threads must be an int >= 1 or null, '
                         f'got {threads!r}.')
    epochs = data.get('epochs')
    if epochs is not None and (not isinstance(epochs, int) or epochs < 1):
        raise SuiteError(f'{where}: epochs must be an int >= 1 or null, got '
                         f'{epochs!r}.')
    work_root = data.get('work_root') or osp.join('work_dirs', 'experiments',
                                                  name)
    out_dir = data.get('out_dir') or osp.join(work_root, 'suites', name)
    options = _options(f'{where}: options', data.get('options'))
    overrides = _override_sets(where, data.get('overrides'))

    if ('configs' in data) == ('grid' in data):
        raise SuiteError(f'{where}: give either `configs` (every config × '
                         'every override set) or `grid` (a list of groups), '
                         'exactly one of them.')
    if 'configs' in data:
        # every override set; the implicit `default` ({}) only when it is
        # the only one or named in the file
        named = list((data.get('overrides') or {}).keys())
        groups = [dict(configs=data['configs'],
                       overrides=named or ['default'])]
    else:
        groups = data['grid']
        if not isinstance(groups, list) or not groups:
            raise SuiteError(f'{where}: grid must be a non-empty list of '
                             'groups {configs, overrides, seeds}.')
    runs: List[Run] = []
    stems: Dict[str, str] = {}
    for gi, group in enumerate(groups):
        w = f'{where}: grid[{gi}]' if 'grid' in data else where
        if not isinstance(group, dict):
            raise SuiteError(f'{w}: a group is a mapping, got {group!r}.')
        _check_keys(w, group, GROUP_KEYS)
        configs = group.get('configs')
        if isinstance(configs, (str, dict)):
            configs = [configs]
        if not isinstance(configs, list) or not configs:
            raise SuiteError(f'{w}: configs must be a non-empty list of '
                             'config paths (or {path, name} mappings), got '
                             f'{configs!r}.')
        entries = []
        for c in configs:
            if isinstance(c, dict):
                _check_keys(f'{w}: config entry {c!r}', c, {'path', 'name'})
                path_, cname = c.get('path'), c.get('name')
            else:
                path_, cname = c, None
            if not isinstance(path_, str) or not path_:
                raise SuiteError(f'{w}: a config entry needs a path, got '
                                 f'{c!r}.')
            cname = cname or osp.splitext(osp.basename(path_))[0]
            if not isinstance(cname, str) or not _NAME.match(cname):
                raise SuiteError(f'{w}: config name {cname!r} may use '
                                 'letters, digits and _ . + - only.')
            entries.append((path_, cname))
        names = group.get('overrides', ['default'])
        if isinstance(names, str):
            names = [names]
        for n in names:
            if n not in overrides:
                raise SuiteError(f'{w}: unknown override set {n!r}; defined: '
                                 f'{sorted(overrides)}.')
        group_seeds = (_int_list(w, group['seeds'], 'seeds')
                       if 'seeds' in group else seeds)
        for config, stem in entries:
            if check_configs and not osp.isfile(config):
                raise SuiteError(
                    f'{w}: config file {config!r} does not exist (paths are '
                    f'relative to the directory run_suite is started in, '
                    f'now {os.getcwd()!r}).')
            if stems.setdefault(stem, osp.normpath(config)) != \
                    osp.normpath(config):
                raise SuiteError(
                    f'{w}: two configs share the name {stem!r} '
                    f'({stems[stem]} and {config}); run folders are named '
                    'after it: give one a name, e.g. '
                    f'`- {{path: {config}, name: NAME}}`.')
            for n in names:
                ov = overrides[n]
                label = ov['label'] or (stem if n == 'default' else
                                        f'{stem}+{n}')
                for seed in group_seeds:
                    opts = dict(options)
                    opts.update(ov['options'])
                    for key in seed_keys:
                        opts[key] = seed
                    needs_dir = (osp.join(work_root, ov['needs'])
                                 if ov['needs'] else None)
                    opts, needs_files = _substitute(
                        opts, needs_dir, f'{where}: override set {n!r}')
                    run = Run(config=config, override=n, seed=seed,
                              label=label, options=opts, needs=ov['needs'],
                              needs_files=needs_files, name=stem)
                    run.run_dir = osp.join(work_root, run.run_id)
                    run.work_root = work_root
                    if any(r.run_id == run.run_id for r in runs):
                        raise SuiteError(f'{where}: run {run.run_id} is '
                                         'listed twice.')
                    runs.append(run)
    labels = []
    for r in runs:
        if r.label not in labels:
            labels.append(r.label)
    rename = data.get('labels') or {}
    if not isinstance(rename, dict):
        raise SuiteError(f'{where}: labels must be a mapping of cell labels '
                         f'to new labels, got {rename!r}.')
    for old, new in rename.items():
        if old not in labels:
            raise SuiteError(f'{where}: labels: {old!r} is not a cell label '
                             f'of the suite ({labels}).')
        if not isinstance(new, str) or not new.strip():
            raise SuiteError(f'{where}: labels: the new label of {old!r} '
                             f'must be a non-empty string, got {new!r}.')
    for r in runs:
        r.label = rename.get(r.label, r.label)
    labels = [rename.get(label, label) for label in labels]
    if len(set(labels)) != len(labels):
        raise SuiteError(f'{where}: labels: two cells get the same label '
                         f'({labels}).')
    report_by = data.get('report_by')
    if report_by not in (None, 'override'):
        raise SuiteError(f"{where}: report_by must be 'override' or null, "
                         f'got {report_by!r}.')
    baselines = data.get('baselines') or []
    if isinstance(baselines, str):
        baselines = [baselines]
    names = {r.stem for r in runs}
    for b in baselines:
        if report_by == 'override' and b in names:
            continue
        if b not in labels:
            raise SuiteError(f'{where}: baseline {b!r} is not a cell label '
                             f'of the suite ({labels}).')
    points = data.get('budget_points') or []
    if not isinstance(points, list) or not all(
            isinstance(p, (int, float)) and p > 0 for p in points):
        raise SuiteError(f'{where}: budget_points must be a list of '
                         f'positive MFLOPs values, got {points!r}.')
    claims = data.get('claims') or []
    if not isinstance(claims, list):
        raise SuiteError(f'{where}: claims must be a list, got {claims!r}.')
    for i, c in enumerate(claims):
        w = f'{where}: claims[{i}]'
        if not isinstance(c, dict):
            raise SuiteError(f'{w}: a claim is a mapping, got {c!r}.')
        _check_keys(w, c, CLAIM_KEYS)
        for key in ('claim', 'a', 'b', 'expect'):
            if key not in c:
                raise SuiteError(f'{w}: `{key}` is required.')
        valid = (labels + sorted({r.stem for r in runs})
                 if report_by == 'override' else labels)
        for key in ('a', 'b'):
            if c[key] not in valid:
                raise SuiteError(f'{w}: {key}={c[key]!r} is not a cell label '
                                 f'of the suite ({labels}).')
        ex = c.get('exit', 'last')
        if ex not in ('first', 'last', 'mean') and not (
                isinstance(ex, int) and ex >= 1):
            raise SuiteError(f"{w}: exit must be 'first', 'last', 'mean' or "
                             f'an exit number >= 1, got {ex!r}.')
        if c['expect'] not in ('+', '-', '='):
            raise SuiteError(f"{w}: expect must be '+', '-' or '=', got "
                             f"{c['expect']!r}.")
        margin = c.get('margin', 1.0)
        if not isinstance(margin, (int, float)) or margin <= 0:
            raise SuiteError(f'{w}: margin must be > 0, got {margin!r}.')
    suite = Suite(path=path, name=name,
                  description=str(data.get('description') or '').strip(),
                  work_root=work_root, out_dir=out_dir, seeds=seeds,
                  seed_keys=seed_keys, parallel=parallel, threads=threads,
                  epochs=epochs, options=options, overrides=overrides,
                  runs=runs, baselines=list(baselines),
                  budget_points=[float(p) for p in points],
                  publish=data.get('publish'), report_by=report_by,
                  claims=[dict(c) for c in claims],
                  notes=str(data.get('notes') or '').strip(),
                  archive=_archive_dir(where, data.get('archive')))
    _check_needs(suite)
    return suite


def _archive_dir(where: str, value) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SuiteError(f'{where}: archive must be a folder path (relative '
                         f'to the directory run_suite is started in), got '
                         f'{value!r}.')
    return value


def _check_needs(suite: Suite) -> None:
    ids = {r.run_id for r in suite.runs}
    for run in suite.runs:
        if run.needs and run.needs == run.run_id:
            raise SuiteError(f'{suite.path}: run {run.run_id} needs itself.')
        if run.needs and run.needs in ids:
            dep = next(r for r in suite.runs if r.run_id == run.needs)
            if dep.needs:
                raise SuiteError(f'{suite.path}: chained needs ({run.run_id} '
                                 f'→ {dep.run_id} → {dep.needs}) are not '
                                 'supported.')
