"""Training data packed into one file, and a run from it without GDAL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geounet.errors import InputError
from geounet.model.checkpoint import read_card
from geounet.train.datasets import build_training_data
from geounet.train.pack import load_pack, main, save_pack


@pytest.fixture
def pack(crop: tuple[Path, Path, Path], tmp_path: Path) -> tuple[Path, object]:
    scene, gpkg, _ = crop
    data = build_training_data([scene, scene], [gpkg], places=["a", "b"], chip_size=64,
                               targets=None)  # fmt: skip
    path = tmp_path / "data.npz"
    save_pack(path, data)
    return path, data


def test_a_pack_round_trips_its_arrays_and_header(pack: tuple[Path, object]) -> None:
    path, data = pack
    back = load_pack(path)
    assert back.places == ("a", "b") and back.band_names == data.band_names  # type: ignore[attr-defined]
    assert back.pixel_size_m == data.pixel_size_m  # type: ignore[attr-defined]
    for a, b in zip(data.scenes, back.scenes, strict=True):  # type: ignore[attr-defined]
        np.testing.assert_array_equal(a.instances, b.instances)
        np.testing.assert_array_equal(a.valid, b.valid)
        np.testing.assert_array_equal(a.trainable, b.trainable)
        assert a.val_start == b.val_start
        assert a.extent is not None and a.extent == b.extent  # for the card's trained_on
        # 8-bit RGB is stored as JPEG: about one grey level off on average
        assert np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 2.0


def test_a_file_that_is_not_a_pack_is_refused_without_unpickling(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_pack(tmp_path / "missing.npz")
    objects = tmp_path / "objects.npz"
    np.savez(objects, header=np.array([{"format": "geounet-pack-1"}], dtype=object))
    with pytest.raises(InputError, match="not a readable pack"):
        load_pack(objects)
    other = tmp_path / "other.npz"
    np.savez(other, header=np.frombuffer(json.dumps({"format": "x"}).encode(), np.uint8))
    with pytest.raises(InputError, match="not a geounet-pack-1 pack"):
        load_pack(other)


def test_training_from_a_pack_needs_no_gdal_and_keeps_some_places(
    pack: tuple[Path, object], tmp_path: Path
) -> None:
    path, _ = pack
    out = tmp_path / "m.safetensors"
    args = [str(path), "--out", str(out), "--places", "b", "--depth", "2", "--width", "4"]
    args += ["--chip-size", "64", "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "2"]
    args += ["--workers", "0", "--threshold", "0.5", "--body-target", "depth", "--no-progress"]
    # a fresh interpreter where importing GDAL's and geopandas' stack fails
    blocked = ["rasterio", "geopandas", "shapely", "torchgeo", "pyproj", "pyogrio", "dask"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "from geounet.train.pack import main\n"
        f"sys.exit(main({args!r}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    card = read_card(out)
    assert card.class_names == ("building", "body")
    assert card.provenance["data.places"] == "b: crop"
    assert "geounet.train.pack" in card.provenance["command"]
    assert main([str(path), "--out", str(tmp_path / "x.safetensors"), "--places", "z"]) == 2
