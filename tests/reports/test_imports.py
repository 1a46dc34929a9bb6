"""The CLI and the table command never import matplotlib or numba (they load only inside the
commands that need them)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import contextlib, io, sys
import archcost.cli
archcost.cli.make_parser()
with contextlib.redirect_stdout(io.StringIO()):
    assert archcost.cli.main(["table", "vgg16"]) == 0
    assert archcost.cli.main(["table", "vgg16", "--by", "op-type"]) == 0
    assert archcost.cli.main(["designs"]) == 0
heavy = sorted(m for m in ("matplotlib", "numba") if m in sys.modules)
print(",".join(heavy) or "clean")
"""


def test_cli_and_table_do_not_import_matplotlib_or_numba():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.strip() == "clean", out.stdout + out.stderr


def test_plot_command_does_import_matplotlib():
    # The check above can fail: the plot command really loads matplotlib.
    script = ("import sys, archcost.cli, tempfile, os\n"
              "d = tempfile.mkdtemp()\n"
              "archcost.cli.main(['plot', 'layers', 'conv3x3', '-o', os.path.join(d, 'x.png')])\n"
              "print('matplotlib' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True"
