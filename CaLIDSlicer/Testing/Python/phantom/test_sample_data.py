"""The module's Sample Data: shipped phantom files, their checksums, how they were made, how Slicer loads them."""

from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np
import pytest

from calid import io
from CaLIDSlicerLib.sampledata import SAMPLES, register_samples, registration_arguments, sample_folder

MODULE_DIR = Path(__file__).resolve().parents[3]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_shipped_file_matches_its_checksum_and_has_a_thumbnail(sample):
    folder = sample_folder(MODULE_DIR)
    assert sha256(folder / sample.file_name) == sample.sha256
    assert (folder / sample.thumbnail).stat().st_size > 1000


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_registration_points_at_the_shipped_file_with_its_checksum(sample):
    arguments = registration_arguments(sample, MODULE_DIR)
    uri = urlparse(arguments["uris"])
    assert uri.scheme == "file"
    path = Path(url2pathname(uri.path))
    assert path.is_file() and path.name == arguments["fileNames"] == sample.file_name
    algorithm, digest = arguments["checksums"].split(":")
    assert algorithm == "SHA256" and digest == sha256(path)
    assert Path(arguments["thumbnailFileName"]).is_file()
    assert arguments["loadFileType"] == ("SequenceFile" if sample.file_name.endswith(".seq.nrrd") else "VolumeFile")


@pytest.mark.slow
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_recorded_command_remakes_the_same_oblique_volume(tmp_path, sample):
    from calid.cli import main

    remade = tmp_path / sample.file_name
    assert main([*sample.command, "-o", str(remade)]) == 0
    shipped, again = io.read(sample_folder(MODULE_DIR) / sample.file_name), io.read(remade)
    np.testing.assert_array_equal(shipped.array, again.array)
    np.testing.assert_allclose(shipped.affine_ras(), again.affine_ras(), atol=1e-9)
    assert shipped.array.dtype == np.int16
    off_axis = np.abs(shipped.direction) * (1 - np.eye(3))
    assert off_axis.max() > 0.1  # double-oblique: geometry is exercised, not assumed


def test_register_samples_hands_every_sample_to_slicers_sample_data(monkeypatch):
    calls = []
    fake = types.ModuleType("SampleData")
    fake.SampleDataLogic = types.SimpleNamespace(registerCustomSampleDataSource=lambda **kw: calls.append(kw))
    monkeypatch.setitem(sys.modules, "SampleData", fake)
    register_samples(MODULE_DIR)
    assert [c["sampleName"] for c in calls] == [s.name for s in SAMPLES]
    assert len({c["category"] for c in calls}) == 1


def test_cine_sample_loads_as_a_sequence_through_slicers_storage_node():
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("needs Slicer's MRML core (pip install slicer-core)")
    cine = next(s for s in SAMPLES if s.load_file_type == "SequenceFile")
    path = sample_folder(MODULE_DIR) / cine.file_name
    scene = slicer.vtkMRMLScene()
    sequence, storage = slicer.vtkMRMLSequenceNode(), slicer.vtkMRMLVolumeSequenceStorageNode()
    scene.AddNode(sequence)
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(sequence) == 1
    expected = io.read(path)
    assert sequence.GetNumberOfDataNodes() == expected.n_frames == 12
    assert sequence.GetNthDataNode(0).GetImageData().GetDimensions() == (128, 128, 8)
