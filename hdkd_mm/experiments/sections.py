"""The checks of a suite file, one per section (resources, the grid of
runs, cell labels, baselines, claims, the data folder, ...), each raising a
:class:`~hdkd_mm.experiments.spec.SuiteError` that names the file, the key,
the value and the fix. :func:`hdkd_mm.experiments.suite.load_suite` calls
them in order."""
import os
import os.path as osp
import re
from typing import Any, Dict, List, Optional, Tuple

from .options import format_value
from .spec import DATA_ROOT, Run, Suite, SuiteError

TOP_KEYS = {
    'name', 'description', 'work_root', 'out_dir', 'seeds', 'seed_keys',
    'parallel', 'threads', 'epochs', 'options', 'configs', 'grid',
    'overrides', 'labels', 'baselines', 'budget_points', 'publish', 'notes',
    'report_by', 'claims', 'archive', 'data_root'
}
CLAIM_KEYS = {'claim', 'a', 'b', 'exit', 'expect', 'margin', 'paper'}
GROUP_KEYS = {'configs', 'overrides', 'seeds'}
OVERRIDE_KEYS = {'label', 'needs', 'options'}
RUN_ID = re.compile(r'^[A-Za-z0-9_.+-]+/[A-Za-z0-9_.+-]+/seed-?\d+$')
NAME = re.compile(r'^[A-Za-z0-9_.+-]+$')


def read_name_and_seeds(where: str, data: Dict) -> Tuple[str, List[int]]:
    name = data.get('name')
    if not isinstance(name, str) or not NAME.match(name or ''):
        raise SuiteError(f'{where}: `name` is required (letters, digits, '
                         f'_ . + -), got {name!r}.')
    if 'seeds' not in data:
        raise SuiteError(f'{where}: `seeds` is required (a list of ints).')
    return name, int_list(where, data['seeds'], 'seeds')


def check_keys(where: str, data: Dict, allowed: set) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SuiteError(f'{where}: unknown key(s) {unknown}; allowed: '
                         f'{sorted(allowed)}.')


def int_list(where: str, value, what: str) -> List[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise SuiteError(f'{where}: {what} must be a non-empty list of '
                         f'integers, got {value!r}.')
    if len(set(value)) != len(value):
        raise SuiteError(f'{where}: {what} has duplicates: {value!r}.')
    return list(value)


def read_options(where: str, value) -> Dict[str, Any]:
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


def read_overrides(where: str, raw) -> Dict[str, Dict[str, Any]]:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise SuiteError(f'{where}: overrides must be a mapping of names to '
                         f'option sets, got {raw!r}.')
    out = {}
    for name, body in raw.items():
        w = f'{where}: override set {name!r}'
        if not isinstance(name, str) or not NAME.match(name):
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
                                      or not RUN_ID.match(needs)):
                raise SuiteError(
                    f'{w}: needs must be a run id CONFIG_STEM/OVERRIDE/seedK '
                    f'(e.g. hdkd/default/seed0), got {needs!r}.')
            out[name] = dict(label=body.get('label'), needs=needs,
                             options=read_options(w, body.get('options')))
        else:
            out[name] = dict(label=None, needs=None,
                             options=read_options(w, body))
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


def read_seed_keys(where: str, seed_keys) -> List[str]:
    if isinstance(seed_keys, str):
        seed_keys = [seed_keys]
    if not isinstance(seed_keys, list) or not all(
            isinstance(k, str) and k for k in seed_keys):
        raise SuiteError(f'{where}: seed_keys must be a list of dotted '
                         f'config keys, got {seed_keys!r}.')
    return seed_keys


def read_resources(where: str, data: Dict):
    """``(parallel, threads, epochs)``."""
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
    return parallel, threads, epochs


def read_groups(where: str, data: Dict) -> List:
    """The groups ``{configs, overrides, seeds}`` of ``grid``, or the one
    group that ``configs`` stands for."""
    if ('configs' in data) == ('grid' in data):
        raise SuiteError(f'{where}: give either `configs` (every config × '
                         'every override set) or `grid` (a list of groups), '
                         'exactly one of them.')
    if 'configs' in data:
        # every override set; the implicit `default` ({}) only when it is
        # the only one or named in the file
        named = list((data.get('overrides') or {}).keys())
        return [dict(configs=data['configs'],
                     overrides=named or ['default'])]
    groups = data['grid']
    if not isinstance(groups, list) or not groups:
        raise SuiteError(f'{where}: grid must be a non-empty list of '
                         'groups {configs, overrides, seeds}.')
    return groups


def _config_entries(w: str, configs) -> List:
    """A group's configs as ``[(path, name)]``."""
    if isinstance(configs, (str, dict)):
        configs = [configs]
    if not isinstance(configs, list) or not configs:
        raise SuiteError(f'{w}: configs must be a non-empty list of '
                         'config paths (or {path, name} mappings), got '
                         f'{configs!r}.')
    entries = []
    for c in configs:
        if isinstance(c, dict):
            check_keys(f'{w}: config entry {c!r}', c, {'path', 'name'})
            path, cname = c.get('path'), c.get('name')
        else:
            path, cname = c, None
        if not isinstance(path, str) or not path:
            raise SuiteError(f'{w}: a config entry needs a path, got {c!r}.')
        cname = cname or osp.splitext(osp.basename(path))[0]
        if not isinstance(cname, str) or not NAME.match(cname):
            raise SuiteError(f'{w}: config name {cname!r} may use letters, '
                             'digits and _ . + - only.')
        entries.append((path, cname))
    return entries


def expand_runs(where: str, data: Dict, groups: List, overrides: Dict,
                common: Dict) -> List[Run]:
    """Every (config × override set × seed) run of the groups."""
    runs: List[Run] = []
    ids = set()
    stems: Dict[str, str] = {}
    for gi, group in enumerate(groups):
        w = f'{where}: grid[{gi}]' if 'grid' in data else where
        if not isinstance(group, dict):
            raise SuiteError(f'{w}: a group is a mapping, got {group!r}.')
        check_keys(w, group, GROUP_KEYS)
        entries = _config_entries(w, group.get('configs'))
        names = group.get('overrides', ['default'])
        if isinstance(names, str):
            names = [names]
        for n in names:
            if n not in overrides:
                raise SuiteError(f'{w}: unknown override set {n!r}; defined: '
                                 f'{sorted(overrides)}.')
        seeds = (int_list(w, group['seeds'], 'seeds')
                 if 'seeds' in group else common['seeds'])
        for config, stem in entries:
            if common.get('check_configs', True) and not osp.isfile(config):
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
                for seed in seeds:
                    run = _make_run(where, config, stem, n, overrides[n],
                                    seed, common)
                    if run.run_id in ids:
                        raise SuiteError(f'{where}: run {run.run_id} is '
                                         'listed twice.')
                    ids.add(run.run_id)
                    runs.append(run)
    return runs


def _make_run(where: str, config: str, stem: str, override: str, ov: Dict,
              seed: int, common: Dict) -> Run:
    opts = dict(common['options'])
    opts.update(ov['options'])
    for key in common['seed_keys']:
        opts[key] = seed
    work_root = common['work_root']
    needs_dir = osp.join(work_root, ov['needs']) if ov['needs'] else None
    opts, needs_files = _substitute(opts, needs_dir,
                                    f'{where}: override set {override!r}')
    label = ov['label'] or (stem if override == 'default' else
                            f'{stem}+{override}')
    run = Run(config=config, override=override, seed=seed, label=label,
              options=opts, needs=ov['needs'], needs_files=needs_files,
              name=stem)
    run.run_dir = osp.join(work_root, run.run_id)
    run.work_root = work_root
    return run


def rename_cells(where: str, runs: List[Run], rename) -> List[str]:
    """Apply ``labels`` (old cell label → new) to the runs; returns the
    cell labels in suite order."""
    labels = []
    for r in runs:
        if r.label not in labels:
            labels.append(r.label)
    rename = rename or {}
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
    return labels


def read_baselines(where: str, baselines, labels: List[str],
                   valid: List[str]) -> List[str]:
    baselines = baselines or []
    if isinstance(baselines, str):
        baselines = [baselines]
    for b in baselines:
        if b not in valid:
            raise SuiteError(f'{where}: baseline {b!r} is not a cell label '
                             f'of the suite ({labels}).')
    return list(baselines)


def read_budget_points(where: str, points) -> List[float]:
    points = points or []
    if not isinstance(points, list) or not all(
            isinstance(p, (int, float)) and p > 0 for p in points):
        raise SuiteError(f'{where}: budget_points must be a list of '
                         f'positive MFLOPs values, got {points!r}.')
    return [float(p) for p in points]


def read_claims(where: str, claims, labels: List[str],
                valid: List[str]) -> List[Dict[str, Any]]:
    claims = claims or []
    if not isinstance(claims, list):
        raise SuiteError(f'{where}: claims must be a list, got {claims!r}.')
    for i, c in enumerate(claims):
        w = f'{where}: claims[{i}]'
        if not isinstance(c, dict):
            raise SuiteError(f'{w}: a claim is a mapping, got {c!r}.')
        check_keys(w, c, CLAIM_KEYS)
        for key in ('claim', 'a', 'b', 'expect'):
            if key not in c:
                raise SuiteError(f'{w}: `{key}` is required.')
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
    return [dict(c) for c in claims]


def read_data_root(where: str, in_file, given: Optional[str],
                   runs: List[Run]) -> Optional[str]:
    """The data folder: ``given`` (the command line's), else the file's
    ``data_root``; checked to be passable as a command-line option, and
    refused when no option uses it."""
    if in_file is not None and (not isinstance(in_file, str)
                                or not in_file.strip()):
        raise SuiteError(f'{where}: data_root must be a folder path or '
                         f'null, got {in_file!r}.')
    root = given if given is not None else in_file
    if root is None:
        return None
    source = '--data-root' if given is not None else 'data_root'
    try:
        format_value(root)
    except ValueError as err:
        raise SuiteError(f'{where}: {source} {root!r}: {err} Use a folder '
                         'path without those characters (e.g. a symbolic '
                         'link to it).') from None
    if not any(r.uses_data_root() for r in runs):
        raise SuiteError(f'{where}: {source} {root!r} is given, but no option '
                         f'of the suite uses {DATA_ROOT}: put it in the '
                         'options that name the data folder, e.g. '
                         f"`train_dataloader.dataset.data_root: '{DATA_ROOT}'`"
                         '.')
    return root


def read_archive(where: str, value) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SuiteError(f'{where}: archive must be a folder path (relative '
                         f'to the directory run_suite is started in), got '
                         f'{value!r}.')
    return value


def check_needs(suite: Suite) -> None:
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
