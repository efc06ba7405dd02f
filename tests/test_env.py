import subprocess
import sys


def test_env_report_names_versions_devices_and_backend():
    out = subprocess.run([sys.executable, "-m", "triton_segloss.env"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for needle in ("triton_segloss ", "torch ", "python ", "device cpu:", "backend now:", "Triton kernel cache"):
        assert needle in text, (needle, text)
