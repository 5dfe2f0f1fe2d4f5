"""``calid reconstruct`` and ``calid --help`` through the real entry points."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from calid.cli import main
from calid.io.read_write import read, write


def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "calid", "--help"], capture_output=True, text=True, check=True)
    for command in ("demo", "reconstruct", "evaluate", "phantom"):
        assert command in out.stdout


def test_reconstruct_writes_volume_and_report(tmp_path, oblique_stack, capsys):
    source = write(oblique_stack, tmp_path / "sparse.nrrd")
    target = tmp_path / "dense.nrrd"
    code = main(["reconstruct", str(source), "-o", str(target), "--factor", "2", "--method", "linear",
                 "--progress", "none"])
    assert code == 0
    dense = read(target)
    assert dense.n_slices == 2 * oblique_stack.n_slices - 1
    np.testing.assert_array_equal(dense.array[::2], oblique_stack.array)
    report = json.loads((tmp_path / "dense.calid.json").read_text())
    assert report["method"] == "linear" and report["factor"] == 2 and report["sampler"] == {}
    assert report["synthesized_slices"] == list(range(1, dense.n_slices, 2))
    assert report["acquired_slices"] == list(range(0, dense.n_slices, 2))
    assert "wrote" in capsys.readouterr().out


def test_calid_sampler_options_reach_the_engine_and_the_report(tmp_path, oblique_stack):
    import calid.methods.reconstruction as rec

    if not rec.calid_model_available():
        pytest.skip("the bundled CaLID model is not installed")
    source = write(oblique_stack, tmp_path / "sparse.nrrd")
    reports = {}
    for name, extra in (("plain", ["--views", "1", "--guide-blend", "0", "--temperature", "0.5"]), ("default", []),
                        ("detail", ["--guide-detail", "0.5", "--guide-detail-mm", "2"])):
        assert main(["reconstruct", str(source), "-o", str(tmp_path / f"{name}.nrrd"), "--factor", "2", "--method", "calid",
                     "--progress", "none", *extra]) == 0
        reports[name] = json.loads((tmp_path / f"{name}.calid.json").read_text())["sampler"]
    assert (reports["plain"]["views"], reports["plain"]["guide_blend"], reports["plain"]["temperature"]) == (1, 0.0, 0.5)
    assert (reports["default"]["views"], reports["default"]["guide_blend"]) == (rec.DEFAULT_VIEWS, rec.DEFAULT_GUIDE_BLEND)
    assert reports["default"]["temperature"] == 0.0  # one sample: the deterministic estimate
    assert (reports["detail"]["guide_detail"], reports["detail"]["guide_detail_mm"]) == (0.5, 2.0)
    plain, default = read(tmp_path / "plain.nrrd").array, read(tmp_path / "default.nrrd").array
    detail = read(tmp_path / "detail.nrrd").array
    np.testing.assert_array_equal(plain[::2], default[::2])
    np.testing.assert_array_equal(detail[::2], default[::2])  # acquired slices bit-exact under detail transfer too
    assert np.abs(plain[1::2].astype(float) - default[1::2]).max() > 0
    assert np.abs(detail[1::2].astype(float) - default[1::2]).max() > 0


def test_json_progress_is_one_object_per_line(tmp_path, oblique_cine):
    source = write(oblique_cine, tmp_path / "cine.nii.gz")
    proc = subprocess.run(
        [sys.executable, "-m", "calid", "reconstruct", str(source), "-o", str(tmp_path / "dense.seq.nrrd"),
         "--spacing", "4", "--method", "linear", "--progress", "json"],
        capture_output=True, text=True, check=True,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["event"] == "estimate" and events[1]["event"] == "start" and events[-1]["event"] == "done"
    steps = [e for e in events if e["event"] == "step"]
    assert steps[-1]["done"] == steps[-1]["total"] == oblique_cine.n_frames


def test_output_equal_to_input_is_refused_and_input_untouched(tmp_path, oblique_stack, capsys):
    source = write(oblique_stack, tmp_path / "sparse.nrrd")
    before = source.read_bytes()
    code = main(["reconstruct", str(source), "-o", str(source), "--factor", "2", "--method", "linear"])
    assert code == 2
    assert "input" in capsys.readouterr().err
    assert source.read_bytes() == before


def test_failed_run_leaves_no_output(tmp_path, oblique_stack, capsys):
    source = write(oblique_stack, tmp_path / "sparse.nrrd")
    code = main(["reconstruct", str(source), "-o", str(tmp_path / "dense.nrrd"), "--spacing", "3",
                 "--method", "linear"])
    assert code == 2
    assert "does not divide" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sparse.nrrd"]


def test_missing_input_names_the_file(tmp_path, capsys):
    code = main(["reconstruct", str(tmp_path / "nope.nii.gz"), "-o", str(tmp_path / "x.nii.gz")])
    assert code == 2
    assert "nope.nii.gz" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["reconstruct", "demo"])
@pytest.mark.parametrize("factor", ["0", "-2", "1.5"])
def test_factor_zero_or_negative_is_refused_before_any_work(tmp_path, oblique_stack, capsys, command, factor):
    """Issue 18.1: ``--factor 0`` used to run x2 silently (``args.factor or 2``)."""
    source = write(oblique_stack, tmp_path / "sparse.nrrd")
    args = [command, str(source), "-o", str(tmp_path / "dense.nrrd")] if command == "reconstruct" else \
        [command, "-o", str(tmp_path / "demo")]
    with pytest.raises(SystemExit) as stop:
        main([*args, "--factor", factor, "--method", "linear", "--progress", "none"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--factor" in err and repr(factor) in err and "whole number" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sparse.nrrd"]


@pytest.mark.parametrize("factor", [0, -2, 2.5, True])
def test_python_api_refuses_a_factor_below_one(oblique_stack, factor):
    from calid.errors import InputError
    from calid.methods.reconstruction import reconstruct

    with pytest.raises(InputError, match="factor must be a positive integer"):
        reconstruct(oblique_stack, factor=factor, method="linear")
