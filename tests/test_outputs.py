"""archcost.outputs: output files are checked before the work, written atomically, and get the
mode the user's umask gives any new file (issue 18: exports were 0600, plots 0644)."""

import os
import stat

import pytest

from archcost.cli import main
from archcost.errors import ArchcostError
from archcost.outputs import check_output_path, write_atomic


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
@pytest.mark.parametrize("argv", [
    ["export", "lenet5", "-o", "OUT.yaml"],
    ["plot", "layers", "lenet5", "-o", "OUT.png"],
    ["plot", "bubble", "vgg16", "alexnet_tv", "-o", "OUT.svg"],
])
def test_new_files_follow_the_umask(argv, mask, umask, tmp_path, capsys):
    umask(mask)
    out = tmp_path / argv[-1]
    assert main([*argv[:-1], str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask
    assert sorted(os.listdir(tmp_path)) == [out.name]  # no temp file left behind


def test_bench_output_follows_the_umask(umask, tmp_path, capsys):
    umask(0o002)
    out = tmp_path / "r.json"
    assert main(["bench", "lenet5", "--repeat", "1", "-o", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o664


def test_a_replaced_file_keeps_its_mode(tmp_path):
    out = tmp_path / "net.yaml"
    out.write_text("old\n")
    out.chmod(0o640)
    write_atomic(out, "new\n")
    assert out.read_text() == "new\n" and stat.S_IMODE(out.stat().st_mode) == 0o640


def test_a_failing_writer_leaves_nothing(tmp_path):
    def writer(f):
        f.write(b"half")
        raise OSError(27, "File too large")

    with pytest.raises(ArchcostError, match="file-size limit"):
        write_atomic(tmp_path / "x.png", writer=writer)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name,message", [
    ("missing/x.png", "does not exist"), ("", "not a file name"), ("x\0y.png", "not a file name"),
    ("x.gif", "expected a file name ending in"),
])
def test_check_output_path_errors(name, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArchcostError, match=message):
        check_output_path(name, "-o", (".png",))
    assert os.listdir(tmp_path) == []
