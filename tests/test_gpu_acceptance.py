"""bench/gpu_acceptance.py's CPU smoke run: the same checks as on a GPU
(γ-gradient against float64, AMP iterations, 2-process DDP) at small sizes,
with the GPU-only ones (memory, synchronisations) reported as skipped."""
import json

from tool_helpers import run_tool


def test_gpu_acceptance_cpu_smoke_run(tmp_path):
    out_json = tmp_path / 'verdicts.json'
    out = run_tool('bench/gpu_acceptance.py', '--device', 'cpu', '--json',
                   out_json, timeout=600)
    assert 'No CUDA device (or --device cpu)' in out
    verdicts = {r['check']: r['verdict']
                for r in json.loads(out_json.read_text())['results']}
    assert verdicts == {
        'gamma_grad/float32': 'PASS', 'gamma_grad/bf16': 'PASS',
        'hdkd_amp/6 iterations': 'PASS', 'hdkd_amp/syncs': 'SKIP',
        'memory/demo MSDNet': 'SKIP', 'memory/CIFAR MSDNet 8 exits': 'SKIP',
        'ddp/2 processes': 'PASS'}
    # one verdict line per check
    assert sum(line.startswith(('[PASS]', '[SKIP]', '[FAIL]'))
               for line in out.splitlines()) == len(verdicts)
    # the explicit host reads of the γ-gradient pass are listed (the CUDA
    # run compares its synchronisations with them)
    assert 'explicit host reads per step inside the γ-gradient pass' in out
