"""The panel's parameter object and the ``calid reconstruct`` command line it turns into."""

from __future__ import annotations

from pathlib import Path

import pytest

from calid.cli import build_parser
from calid.commands.reconstruct import METHOD_CHOICES
from calid.errors import InputError
from CaLIDSlicerLib.parameters import (
    UNCERTAINTY_SAMPLES,
    CaLIDParameters,
    Device,
    Method,
    Mode,
    Quality,
    RunFiles,
)


def files(tmp_path: Path, cine: bool = False, uncertainty: bool = False, segmentation: bool = False) -> RunFiles:
    return RunFiles.in_folder(tmp_path, cine=cine, uncertainty=uncertainty, segmentation=segmentation)


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_methods_match_the_cli():
    assert {m.value for m in Method} == set(METHOD_CHOICES)


def test_defaults_give_a_factor_2_auto_run_with_json_progress(tmp_path):
    args = CaLIDParameters().cli_arguments(files(tmp_path), calid_available=False)
    assert args[:4] == ["reconstruct", str(tmp_path / "input.nrrd"), "-o", str(tmp_path / "dense.nrrd")]
    assert option(args, "--factor") == "2" and "--spacing" not in args
    assert option(args, "--method") == "auto" and option(args, "--progress") == "json"
    assert option(args, "--report") == str(tmp_path / "dense.calid.json")
    assert "--steps" not in args and "--samples" not in args and "--guide" not in args  # refused for baselines


def test_arguments_parse_with_the_real_cli(tmp_path):
    params = CaLIDParameters(use_spacing=True, spacing_mm=2.5, method="linear", device="cpu", seed=7, mode="3d")
    parsed = build_parser().parse_args(params.cli_arguments(files(tmp_path, cine=True), calid_available=False))
    assert parsed.spacing == 2.5 and parsed.factor is None
    assert (parsed.method, parsed.device, parsed.seed, parsed.mode) == ("linear", "cpu", 7, "3d")
    assert parsed.input.name == "input.seq.nrrd" and parsed.output.name == "dense.seq.nrrd"
    assert parsed.qc is False  # the panel shows the result in the scene; no figure in its temp folder


def test_auto_uses_calid_with_the_quality_preset_when_the_model_is_installed(tmp_path):
    args = CaLIDParameters(quality="best", device="gpu").cli_arguments(files(tmp_path), calid_available=True)
    assert option(args, "--method") == "calid"
    assert option(args, "--steps") == str(Quality.BEST.steps)
    assert option(args, "--samples") == str(Quality.BEST.samples)
    assert option(args, "--device") == "cuda"
    assert option(args, "--guide") == "registration"


@pytest.mark.parametrize("quality", list(Quality))
def test_registration_start_can_be_turned_off_and_every_preset_parses(tmp_path, quality):
    from calid.methods.reconstruction import diffusion_options

    for start, guide in ((True, "registration"), (False, "none")):
        args = CaLIDParameters(quality=quality, registration_start=start).cli_arguments(files(tmp_path), calid_available=True)
        parsed = build_parser().parse_args(args)
        assert parsed.guide == guide
        # the engine accepts each preset's steps with the guide's start (no stride it cannot take)
        options = diffusion_options("calid", parsed.steps, parsed.samples, 0, "cpu", None, guide=parsed.guide)
        assert options["guide"] == guide and options["steps"] == quality.steps


def test_quality_presets_grow_in_cost():
    assert Quality.FAST.steps < Quality.BALANCED.steps < Quality.BEST.steps
    assert Quality.FAST.samples <= Quality.BALANCED.samples <= Quality.BEST.samples


def test_uncertainty_asks_for_several_samples_and_a_file(tmp_path):
    run_files = files(tmp_path, uncertainty=True, segmentation=True)
    args = CaLIDParameters(quality="fast", uncertainty=True, segmentation=True).cli_arguments(
        run_files, calid_available=True)
    assert int(option(args, "--samples")) == UNCERTAINTY_SAMPLES > 1
    assert option(args, "--uncertainty") == str(tmp_path / "uncertainty.nrrd")
    assert option(args, "--segment") == str(tmp_path / "segmentation.seg.nrrd")


def test_cine_segmentation_goes_to_a_sequence_file(tmp_path):
    assert files(tmp_path, cine=True, segmentation=True).segmentation.name == "segmentation.seq.nrrd"


def test_uncertainty_without_calid_is_refused_before_any_work(tmp_path):
    with pytest.raises(InputError, match="uncertainty map needs the CaLID method"):
        CaLIDParameters(uncertainty=True).cli_arguments(files(tmp_path, uncertainty=True), calid_available=False)
    with pytest.raises(InputError, match="'linear'"):
        CaLIDParameters(uncertainty=True, method="linear").cli_arguments(
            files(tmp_path, uncertainty=True), calid_available=True)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"factor": 0}, "factor must be a positive whole number"),
        ({"factor": 2.5}, "factor must be a positive whole number"),
        ({"factor": True}, "factor must be a positive whole number"),
        ({"spacing_mm": 0.0}, "target spacing must be a positive number"),
        ({"seed": -1}, "seed must be a whole number >= 0"),
        ({"mode": "4d"}, "mode must be one of 'auto', '3d', '2dt', not '4d'"),
        ({"device": "tpu"}, "device must be one of"),
        ({"quality": "ultra"}, "quality must be one of"),
        ({"method": "magic"}, "method must be one of"),
    ],
)
def test_bad_values_are_refused_with_what_is_allowed(changes, message):
    with pytest.raises(InputError, match=message):
        CaLIDParameters(**changes)


def test_strings_become_enums():
    params = CaLIDParameters(mode="2dt", device="cpu", quality="fast", method="cubic")
    assert (params.mode, params.device, params.quality, params.method) == (Mode.CINE, Device.CPU, Quality.FAST, Method.CUBIC)


def test_every_choice_has_a_label_for_the_panel():
    for kind in (Mode, Quality, Device, Method):
        labels = [item.label() for item in kind]
        assert all(labels) and len(set(labels)) == len(labels)
