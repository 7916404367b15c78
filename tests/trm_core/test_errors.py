"""One-line user errors and quiet exits from the CLI (trm_core/errors.py)."""

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_user_error_is_one_line_exit_2():
    proc = _run(
        "import sys\n"
        "from trm_core.errors import UserError, run_cli\n"
        "def main(argv):\n"
        "    raise UserError('x must be >= 1,\\n  but got x=0')\n"
        "sys.exit(run_cli(main))\n"
    )
    assert proc.returncode == 2
    assert proc.stderr == "error: x must be >= 1, but got x=0\n"


def test_closed_stdout_pipe_exits_quietly():
    # `python -m trm_core data show DIR | head -1`: the reader leaves early; no traceback.
    code = (
        "import sys\n"
        "from trm_core.errors import run_cli\n"
        "def main(argv):\n"
        "    for i in range(200000):\n"
        "        print('line', i)\n"
        "sys.exit(run_cli(main))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert first == b"line 0\n"
    assert "Traceback" not in stderr
