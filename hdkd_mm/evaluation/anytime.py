"""Anytime prediction: every exit's top-1/top-5 on the test split of a
config and its cumulative cost (what ``tools/analysis/anytime_eval.py``
writes, and what the experiment suites record as ``RUN/anytime.json``)."""
from typing import Dict, List

__all__ = ['anytime_eval', 'anytime_table']


def anytime_eval(config: str, checkpoint: str, cfg_options=None) -> dict:
    """``{"config", "checkpoint", "num_samples", "exits": [{"exit": k,
    "top1", "top5", "mflops"}, ...]}`` of ``checkpoint`` on the config's
    test dataloader (``cfg_options``: dotted overrides of the config)."""
    import hdkd_mm  # noqa: F401  (registers the plugin's modules)
    from hdkd_mm.launch import load_config, prepare_config

    from .inference import per_exit_results
    cfg = prepare_config(load_config(config, cfg_options), config)
    exits, num_samples = per_exit_results(cfg, checkpoint)
    return dict(config=config, checkpoint=checkpoint,
                num_samples=num_samples, exits=exits)


def anytime_table(exits: List[Dict]) -> str:
    """The exits of :func:`anytime_eval` as a markdown table."""
    lines = ['| exit | MFLOPs | top-1 (%) | top-5 (%) |',
             '|---:|---:|---:|---:|']
    for row in exits:
        lines.append(f"| {row['exit']} | {row['mflops']:.2f} | "
                     f"{row['top1']:.2f} | {row['top5']:.2f} |")
    return '\n'.join(lines)
