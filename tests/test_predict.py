from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import torch

from geounet.core.tiling import plan_tiles
from geounet.errors import InputError, OutputExistsError
from geounet.inference.engine import TilePredictor
from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene, predict_to_raster
from geounet.model.checkpoint import load_checkpoint
from tests.conftest import MakeScene


def read_prob(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as src:
        scale = 1 / 255 if src.dtypes[0] == "uint8" else 1.0
        return src.read(1).astype(np.float64) * scale, src.read_masks(1) > 0


@pytest.mark.parametrize(("h", "w"), [(45, 67), (1, 1), (1, 90), (200, 31), (515, 33)])
def test_output_is_georeferenced_on_the_scene_grid(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path, h: int, w: int
) -> None:
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = np.where((3 * yy + xx) % 7 == 3, 0, 255)  # scattered no-data pixels
    alpha[h // 4 : h // 2, w // 3 : 2 * w // 3] = 0  # and a no-data block
    scene = make_scene(height=h, width=w, alpha=alpha)
    res = predict_scene(scene, tmp_path / "out", tiny_model, PredictOptions(tile=64, overlap=16))
    with rasterio.open(scene) as s, rasterio.open(res.probability) as p:
        assert p.crs == s.crs and p.transform == s.transform and p.shape == s.shape
        assert p.count == 1 and p.dtypes[0] == "uint8"
        assert p.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        # the output's no-data mask is the scene's (its alpha band), pixel for pixel
        np.testing.assert_array_equal(p.read_masks(1), s.dataset_mask())
        assert (p.read(1)[s.dataset_mask() == 0] == 0).all()
        if max(h, w) > 512:  # larger than one 512 px COG block: internal overviews
            assert p.overviews(1)
    fp = gpd.read_file(res.footprints, layer="buildings")
    assert fp.crs == gpd.read_file(res.footprints).crs
    assert res.footprints.name == f"{scene.stem}.buildings.gpkg"


def test_pointwise_predictor_is_stitched_exactly(make_scene: MakeScene, tmp_path: Path) -> None:
    """With a predictor without spatial context, tiling and blending must be invisible."""
    scene = make_scene(height=97, width=131)

    def pointwise(images: np.ndarray) -> np.ndarray:
        return (images[:, 0].astype(np.float32) / 255.0) ** 2

    outs = []
    for tile, overlap, border in [(32, 8, 0), (48, 16, 8), (256, 0, 0)]:
        path = tmp_path / f"p{tile}.tif"
        with rasterio.open(scene) as src:
            plan = plan_tiles(src.height, src.width, tile, overlap, border, multiple=16)
            predict_to_raster(src, [1, 2, 3], plan, pointwise, path, batch_size=3, float32=True)
        outs.append(read_prob(path)[0])
    with rasterio.open(scene) as src:
        expected = (src.read(1).astype(np.float64) / 255.0) ** 2
    for out in outs:
        np.testing.assert_allclose(out, expected, atol=1e-5)


def test_tiled_prediction_is_seam_free(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene(height=96, width=128, seed=4)
    ckpt = load_checkpoint(tiny_model)
    predictor = TilePredictor(ckpt, torch.device("cpu"), torch.float32)
    results = {}
    for name, tile, overlap in [("single", 160, 0), ("tiled", 48, 24)]:
        path = tmp_path / f"{name}.tif"
        with rasterio.open(scene) as src:
            plan = plan_tiles(src.height, src.width, tile, overlap, 16, multiple=4)
            predict_to_raster(src, [1, 2, 3], plan, predictor, path, float32=True)
            results[name] = (read_prob(path)[0], len(plan))
    single, n1 = results["single"]
    tiled, n2 = results["tiled"]
    assert n1 == 1 and n2 > 4
    diff = np.abs(single - tiled)
    # depth-2 U-Net: receptive field ~ 20 px < overlap; blending keeps tile edges out
    assert diff.mean() < 2e-3, diff.mean()
    assert diff.max() < 0.03, diff.max()


def test_nodata_stays_nodata(make_scene: MakeScene, tiny_model: Path, tmp_path: Path) -> None:
    alpha = np.full((45, 67), 255)
    alpha[10:30, 20:50] = 0
    scene = make_scene(alpha=alpha)
    res = predict_scene(
        scene, tmp_path, tiny_model, PredictOptions(tile=64, overlap=16, threshold=0.01)
    )
    prob, valid = read_prob(res.probability)
    np.testing.assert_array_equal(valid, alpha > 0)
    assert (prob[~valid] == 0).all()
    fp = gpd.read_file(res.footprints)
    with rasterio.open(scene) as src:
        from rasterio.features import rasterize

        burnt = (
            rasterize(fp.geometry, out_shape=src.shape, transform=src.transform) if len(fp) else 0
        )
    assert not np.any(np.asarray(burnt)[alpha == 0]), "no footprint covers no-data pixels"


def test_all_nodata_scene_gives_empty_valid_outputs(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene(alpha=np.zeros((45, 67)))
    res = predict_scene(scene, tmp_path, tiny_model, PredictOptions(tile=64, overlap=16))
    _, valid = read_prob(res.probability)
    assert not valid.any()
    assert res.buildings == 0 and len(gpd.read_file(res.footprints)) == 0


def test_resampling_returns_to_the_scene_grid(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene(height=120, width=100, res=0.075)  # model is at 0.15 m
    res = predict_scene(scene, tmp_path, tiny_model, PredictOptions(tile=64, overlap=16))
    assert res.resampled
    with rasterio.open(scene) as s, rasterio.open(res.probability) as p:
        assert p.transform == s.transform and p.shape == s.shape
    prob, valid = read_prob(res.probability)
    assert valid.all() and prob.std() > 0
    off = predict_scene(
        scene, tmp_path / "raw", tiny_model, PredictOptions(tile=64, overlap=16, resample=False)
    )
    assert not off.resampled


def test_a_scene_whose_pixels_are_not_square_on_the_ground_gets_a_note(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    # EPSG:4326 with pixels as many degrees wide as tall, at 60 degrees north: each is
    # 0.075 m wide and 0.15 m tall on the ground
    from rasterio.transform import from_origin

    step = 0.15 / 111_320
    scene = tmp_path / "degrees.tif"
    profile = {"driver": "GTiff", "height": 64, "width": 64, "count": 3, "dtype": "uint8",
               "crs": "EPSG:4326", "transform": from_origin(15.0, 60.0, step, step)}  # fmt: skip
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8))
    res = predict_scene(scene, tmp_path / "out", tiny_model, PredictOptions(tile=64, overlap=16))
    (note,) = [w for w in res.warnings if "square" in w]
    assert note.startswith("degrees.tif: its pixels are 0.07") and "m wide and 0.15 m tall" in note
    assert "gdalwarp -t_srs EPSG:32633" in note and "degrees.tif degrees_utm.tif" in note
    square = predict_scene(make_scene(), tmp_path / "sq", tiny_model, PredictOptions(tile=64))
    assert not [w for w in square.warnings if "square" in w]


def test_refuses_existing_outputs_and_wrong_bands(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene()
    opts = PredictOptions(tile=64, overlap=16)
    predict_scene(scene, tmp_path, tiny_model, opts)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OutputExistsError, match="--overwrite"):
        predict_scene(scene, tmp_path, tiny_model, opts)
    predict_scene(scene, tmp_path, tiny_model, PredictOptions(tile=64, overlap=16, overwrite=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(InputError, match="takes 3 bands but the scene offers 4"):
        predict_scene(make_scene(count=4), tmp_path / "x", tiny_model, opts)
    with pytest.raises(InputError, match="8-bit"):
        predict_scene(make_scene(dtype="uint16"), tmp_path / "y", tiny_model, opts)


def test_interrupt_leaves_nothing(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geounet.inference.scene as predict_mod

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(predict_mod, "write_footprints", boom)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        predict_scene(make_scene(), out, tiny_model, PredictOptions(tile=64, overlap=16))
    assert list(out.iterdir()) == []


def test_split_channels_stay_internal_or_are_kept_for_vectorize(
    make_scene: MakeScene, split_model: Path, tmp_path: Path
) -> None:
    from geounet.footprints.vectorize import split_bands, vectorize

    scene = make_scene(height=80, width=90)
    opts = {"tile": 64, "overlap": 16, "threshold": 0.45}
    full = predict_scene(scene, tmp_path / "full", split_model, PredictOptions(**opts))  # type: ignore[arg-type]
    with rasterio.open(full.probability) as src:
        assert src.count == 1 and src.descriptions == ("building probability",)
    assert not (tmp_path / "full" / f"{scene.stem}.split.tif").exists()
    raster = predict_scene(
        scene,
        tmp_path / "raster",
        split_model,
        PredictOptions(**opts, footprints=False, name="area"),  # type: ignore[arg-type]
    )
    assert raster.probability.name == "area.prob.tif" and raster.footprints is None
    split = tmp_path / "raster" / "area.split.tif"
    with rasterio.open(split) as c, rasterio.open(raster.probability) as p:
        assert c.descriptions == ("body probability", "contact probability")
        assert (c.transform, c.shape) == (p.transform, p.shape)
        np.testing.assert_array_equal(p.read(1), rasterio.open(full.probability).read(1))
    assert split_bands(split) == {"body": 1, "contact": 2}
    later = vectorize(
        raster.probability, 0.45, split=(split, split_bands(split)), regularize=True
    )  # squared, as predict squares by default
    now = gpd.read_file(full.footprints)
    assert len(later) == len(now) > 0
    assert later.geometry.union_all().symmetric_difference(now.geometry.union_all()).area < 1e-9


def test_the_cards_smallest_seed_is_recorded_and_vectorize_keeps_it(
    make_scene: MakeScene, split_model: Path, tmp_path: Path
) -> None:
    import dataclasses

    import pyogrio
    from typer.testing import CliRunner

    from geounet.cli import app
    from geounet.core.provenance import Provenance
    from geounet.model.checkpoint import save_checkpoint

    ck = load_checkpoint(split_model)
    model = tmp_path / "seeded.safetensors"
    save_checkpoint(model, dataclasses.replace(ck.card, seed_area_m2=3.0), ck.model)
    opts = PredictOptions(tile=64, overlap=16, threshold=0.45, footprints=False, name="area")
    raster = predict_scene(make_scene(height=80, width=90), tmp_path / "r", model, opts)
    with rasterio.open(raster.probability) as src:
        made = Provenance.from_tags(dict(src.tags()))
    assert made is not None and made.seed_area_m2 == 3.0
    forced = dataclasses.replace(opts, seed_area_m2=7.0, name="forced")
    raster7 = predict_scene(make_scene(height=80, width=90), tmp_path / "r", model, forced)
    with rasterio.open(raster7.probability) as src:
        made7 = Provenance.from_tags(dict(src.tags()))
    assert made7 is not None and made7.seed_area_m2 == 7.0
    with pytest.raises(InputError, match="--seed-area"):
        predict_scene(
            make_scene(), tmp_path / "bad", model, dataclasses.replace(opts, seed_area_m2=-1)
        )
    split = tmp_path / "r" / "area.split.tif"
    for extra, recorded in (([], "3.0"), (["--seed-area", "5"], "5.0")):
        out = tmp_path / f"fp{len(extra)}.gpkg"
        args = ["vectorize", str(raster.probability), "--out", str(out), "--split", str(split)]
        result = CliRunner().invoke(app, args + extra)
        assert result.exit_code == 0, result.output
        meta = pyogrio.read_info(out, layer="buildings")["layer_metadata"]
        assert meta["GEOUNET_SEED_AREA_M2"] == recorded


def test_the_cards_smallest_confidence_drops_faint_footprints_and_is_recorded(
    crop: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    import dataclasses

    import pyogrio
    from typer.testing import CliRunner

    from geounet.cli import app
    from geounet.core.provenance import Provenance
    from geounet.model.checkpoint import bundled_model_path, save_checkpoint

    ck = load_checkpoint(bundled_model_path())
    scene = crop[0]  # a corner of Kampala a, real roofs
    opts = PredictOptions(tile=256, overlap=32, name="every", min_confidence=0.0)
    every = gpd.read_file(predict_scene(scene, tmp_path / "r", ck, opts).footprints)
    assert len(every) >= 2, "the scene needs footprints of several confidences"
    ranked = np.sort(every.confidence.to_numpy())
    cut = float(ranked[len(ranked) // 2 - 1] + ranked[len(ranked) // 2]) / 2  # between two
    model = tmp_path / "confident.safetensors"
    save_checkpoint(model, dataclasses.replace(ck.card, min_confidence=cut), ck.model)
    made = predict_scene(scene, tmp_path / "r", model, dataclasses.replace(opts, name="card",
                         min_confidence=None))  # fmt: skip
    kept = gpd.read_file(made.footprints)
    assert len(kept) == int((every.confidence >= cut).sum()) < len(every)
    assert kept.confidence.min() >= cut
    with rasterio.open(made.probability) as src:
        prov = Provenance.from_tags(dict(src.tags()))
    assert prov is not None and prov.min_confidence == cut
    # vectorize (here without the split channels) keeps the raster's, unless told otherwise
    found = {}
    for extra in (["--min-confidence", "0"], []):
        out = tmp_path / f"fp{len(extra)}.gpkg"
        args = ["vectorize", str(made.probability), "--out", str(out), *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        found[len(extra)] = gpd.read_file(out)
        meta = pyogrio.read_info(out, layer="buildings")["layer_metadata"]
        assert float(meta["GEOUNET_MIN_CONFIDENCE"]) == (cut if not extra else 0.0)
    assert len(found[0]) == int((found[2].confidence >= cut).sum())
    assert found[0].confidence.min() >= cut
    with pytest.raises(InputError, match="--min-confidence"):
        predict_scene(scene, tmp_path / "bad", ck, dataclasses.replace(opts, min_confidence=1.5))


def test_split_is_the_same_in_one_tile_or_many(tmp_path: Path) -> None:
    """Touching roofs are split identically whatever the tiling (a pointwise model)."""
    from rasterio.transform import from_origin

    from geounet.footprints.vectorize import vectorize
    from geounet.train.weights import body_map

    inst = np.zeros((70, 90), dtype=np.int64)
    inst[5:25, 5:25], inst[5:25, 25:45] = 1, 2  # two roofs sharing a wall
    inst[35:65, 50:60] = inst[55:65, 60:85] = 3  # an L-shaped roof
    building = np.where(inst > 0, 230, 20).astype(np.uint8)
    body = (body_map(inst, erosion=3.0) * 230).astype(np.uint8)
    scene = tmp_path / "roofs.tif"
    profile = {
        "driver": "GTiff", "height": 70, "width": 90, "count": 3, "dtype": "uint8",
        "crs": "EPSG:32636", "transform": from_origin(500000.0, 40000.0, 0.15, 0.15),
    }  # fmt: skip
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(np.stack([building, body, np.zeros_like(body)]))

    def pointwise(images: np.ndarray) -> np.ndarray:
        return images.astype(np.float32) / 255.0  # building, body, contact

    names = ("building", "body", "contact")
    results = []
    for tile, overlap in [(16, 4), (32, 8), (128, 0)]:
        path = tmp_path / f"p{tile}.tif"
        with rasterio.open(scene) as src:
            plan = plan_tiles(src.height, src.width, tile, overlap, 0, multiple=4)
            predict_to_raster(src, [1, 2, 3], plan, pointwise, path, 3, class_names=names)
        split = (path, {"body": 2, "contact": 3})
        results.append(vectorize(path, 0.5, 0.5, 0, split=split))  # no simplification
    for gdf in results:
        assert len(gdf) == 3, "the two roofs are split, the L stays whole"
        for a, b in zip(results[0].geometry, gdf.geometry, strict=True):
            assert a.symmetric_difference(b).area < 1e-9


@pytest.mark.slow
def test_the_tile_size_moves_the_sample_prediction_only_a_little(tmp_path: Path) -> None:
    """Kampala b with the bundled model: 512 px tiles against one tile (the default here).

    The bounds are those docs/predict.md states, measured by benchmarks/tile_dependence.py.
    """
    from tests.conftest import SAMPLE

    scene = SAMPLE / "kampala_b_z21.tif"
    runs = {}
    for tile in (512, 1024):
        opts = PredictOptions(tile=tile, precision="float32")
        result = predict_scene(scene, tmp_path / str(tile), None, opts)
        with rasterio.open(result.probability) as src:
            runs[tile] = (src.read(1).astype(np.int16), result.buildings, result.tiles)
    assert runs[512][2] > 1 and runs[1024][2] == 1
    diff = np.abs(runs[512][0] - runs[1024][0]) / 255
    assert diff.mean() <= 0.002 and diff.max() <= 0.1
    assert abs(runs[512][1] - runs[1024][1]) <= 0.01 * runs[1024][1] + 1


def test_the_model_is_freed_before_footprints_are_vectorised(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an int8 model's buffers live as long as it does: vectorising, where a run peaks,
    # must not hold them
    import weakref

    import geounet.inference.scene as scene_module

    made: list[weakref.ref[object]] = []
    real_make, real_vectorize = scene_module.make_predictor, scene_module.vectorize

    def make(*args: object, **kwargs: object) -> object:
        predictor, precision, note = real_make(*args, **kwargs)  # type: ignore[arg-type]
        made.append(weakref.ref(predictor))
        return predictor, precision, note

    alive: list[bool] = []

    def vectorize(*args: object, **kwargs: object) -> object:
        alive.append(made[0]() is not None)  # by reference counting, no collection
        return real_vectorize(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scene_module, "make_predictor", make)
    monkeypatch.setattr(scene_module, "vectorize", vectorize)
    scene = make_scene(height=80, width=90)
    result = predict_scene(scene, tmp_path / "out", tiny_model, PredictOptions(tile=64))
    assert result.footprints is not None and alive == [False]
