"""Sample Data entries of the module: a phantom cine and a phantom 3D stack, shipped with the extension.

No public cardiac cine has a stable download URL this module could point to, and real
patient data must not be redistributed here; the samples are therefore the project's own
analytic phantom (double-oblique, int16 like a scanner), made by the ``calid phantom``
command recorded with each one. They are registered with Slicer's Sample Data module as
``file://`` URIs inside the installed extension and checked by SHA-256 before loading,
so they work offline and a damaged file is refused. No Slicer import at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CATEGORY = "Cardiac (CaLID)"
FOLDER = ("Resources", "SampleData")


@dataclass(frozen=True)
class Sample:
    name: str
    description: str
    file_name: str
    sha256: str
    load_file_type: str
    #: The command that wrote the file (arguments after ``calid``); the tests re-run it.
    command: tuple[str, ...]

    @property
    def node_name(self) -> str:
        """The loaded node is named like the sample."""
        return self.name

    @property
    def thumbnail(self) -> str:
        return self.file_name.split(".")[0] + ".png"


SAMPLES = (
    Sample(
        name="CaLIDPhantomCine",
        description="CaLID phantom cine (2D+T)",
        file_name="CaLIDPhantomCine.seq.nrrd",
        sha256="4446bf3f3d35ab017167c073b1666bab934ad253090f36a0ea3d3d85fcb70245",
        load_file_type="SequenceFile",
        command=("phantom", "--slices", "8", "--frames", "12", "--size", "128", "--pixel-spacing", "1.8", "--spacing", "10",
                 "--oblique", "--int16", "--seed", "7"),
    ),
    Sample(
        name="CaLIDPhantomStack",
        description="CaLID phantom 3D stack",
        file_name="CaLIDPhantomStack.nrrd",
        sha256="8bf051be6971e559df5a9628e8c711b5f503a21e29f6209a452e8d80f723f46b",
        load_file_type="VolumeFile",
        command=("phantom", "--3d", "--slices", "8", "--size", "128", "--pixel-spacing", "1.8", "--spacing", "10",
                 "--oblique", "--int16", "--seed", "7"),
    ),
)


def sample_folder(module_dir: str | Path) -> Path:
    """Where the sample files lie beside the module's script (source tree and installed extension alike)."""
    return Path(module_dir).joinpath(*FOLDER)


def registration_arguments(sample: Sample, module_dir: str | Path) -> dict:
    """Keyword arguments of ``SampleData.SampleDataLogic.registerCustomSampleDataSource`` for one sample."""
    folder = sample_folder(module_dir).resolve()
    return {
        "category": CATEGORY,
        "sampleName": sample.name,
        "uris": (folder / sample.file_name).as_uri(),
        "fileNames": sample.file_name,
        "nodeNames": sample.node_name,
        "checksums": f"SHA256:{sample.sha256}",
        "thumbnailFileName": str(folder / sample.thumbnail),
        "loadFileType": sample.load_file_type,
    }


def register_samples(module_dir: str | Path) -> None:
    """Add the samples to Slicer's Sample Data module (call once Slicer has started)."""
    import SampleData

    for sample in SAMPLES:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**registration_arguments(sample, module_dir))
