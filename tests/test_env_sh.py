"""scripts/env.sh is sourced by scripts that run `set -eu` (CI jobs, the cluster jobs, vehicle
start scripts): it must neither trip on an unset variable nor end the caller's shell."""
import subprocess

from conftest import ROOT


def test_env_sh_sources_under_set_eu_and_pipefail():
    script = ('set -euo pipefail; unset LD_LIBRARY_PATH PYTHONPATH AMENT_PREFIX_PATH ORT_DYLIB_PATH || true; '
              '. scripts/env.sh; . scripts/env.sh; echo "ort=${ORT_DYLIB_PATH}"; echo done')
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("done")
    assert "unbound variable" not in proc.stderr
    assert "ort=/" in proc.stdout
