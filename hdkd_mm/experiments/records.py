"""What a run folder records, read and checked by the runner and the
archive alike: JSON files written atomically, and the digest of a run's
resolved config that a recorded run is checked against before it is
reused."""
import hashlib
import json
import os
from typing import Optional

from .suite import Run, SuiteError

__all__ = ['read_json', 'write_json', 'config_digest', 'check_config_digest']


def read_json(path: str) -> Optional[dict]:
    """A JSON file's content, or None if it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json(path: str, data) -> None:
    """Write JSON atomically (a temporary file, then a rename)."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


# Keys that choose how a run executes, not what it computes: the memory
# layout changes float rounding only, as the thread count or the machine do,
# so a run finished with another layout stays the same run.
EXECUTION_KEYS = (('model', 'channels_last'), )


def config_digest(cfg) -> str:
    """A digest of a resolved config (every ``_base_`` merged, the run's
    options applied): equal for the same settings in any clone, different
    when any setting changed (:data:`EXECUTION_KEYS` aside)."""
    data = cfg.to_dict()
    for section, key in EXECUTION_KEYS:
        if isinstance(data.get(section), dict):
            data[section].pop(key, None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_config_digest(run: Run, recorded: Optional[dict],
                        where: str) -> None:
    """Refuse a finished or started run whose config has changed since
    (``recorded``: its ``run.json``; runs recorded without a digest are
    accepted)."""
    old = (recorded or {}).get('config_digest')
    if old and run.config_digest and old != run.config_digest:
        raise SuiteError(
            f'{where} was trained with another version of {run.config} '
            f'(resolved config digest {old}, now {run.config_digest}): a '
            'setting in the config or one of its _base_ files changed since. '
            'Restore the config, or delete that run to train it again.')
