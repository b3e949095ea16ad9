from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window
from typer.testing import CliRunner

from geounet.cli import app
from geounet.core.tiling import plan_tiles
from geounet.errors import InputError, OutputExistsError
from geounet.footprints.merge import merge_footprints, scene_id_of
from geounet.inference.options import PredictOptions
from geounet.inference.scene import predict_scene
from geounet.inference.tileplan import plan_scene, read_plan, read_stored_plan, write_plan
from tests.conftest import SAMPLE, MakeScene

runner = CliRunner()
TRANSFORM = Affine(0.15, 0.0, 500000.0, 0.0, -0.15, 40000.0)


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def kampala_crop(
    path: Path, name: str = "b", row: int = 300, col: int = 300, size: int = 256
) -> Path:
    with rasterio.open(SAMPLE / f"kampala_{name}_z21.tif") as src:
        window = Window(col, row, size, size)
        profile = src.profile | {
            "width": size,
            "height": size,
            "transform": src.window_transform(window),
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read(window=window))
            dst.colorinterp = src.colorinterp
    return path


def test_round_trip_is_exact(tmp_path: Path) -> None:
    plan = plan_tiles(300, 170, 64, 16, border=8, multiple=4)
    path = write_plan(plan, "EPSG:32636", TRANSFORM, tmp_path / "p.gpkg", {"scene": "x.tif"})
    assert read_plan(path) == plan
    stored = read_stored_plan(path)
    assert stored.transform == TRANSFORM
    assert stored.crs.to_epsg() == 32636
    assert stored.meta == {"scene": "x.tif"}


def test_tiles_layer_opens_in_the_right_crs(tmp_path: Path) -> None:
    plan = plan_tiles(100, 130, 64, 16, border=8)
    path = write_plan(plan, "EPSG:32636", TRANSFORM, tmp_path / "p.gpkg")
    assert {str(n) for n, _ in pyogrio.list_layers(path)} == {"tiles", "plan", "layer_styles"}
    tiles = gpd.read_file(path, layer="tiles")
    assert tiles.crs.to_epsg() == 32636
    assert len(tiles) == len(plan)
    assert list(tiles["tile_id"]) == list(range(len(plan)))
    first, last = next(iter(plan)), list(plan)[-1]
    row0 = tiles.iloc[0]
    assert (row0["row"], row0["col"], row0["height"], row0["width"]) == (
        first.row,
        first.col,
        first.height,
        first.width,
    )
    # clipped in-scene bounds
    assert row0["scene_row"] == 0 and row0["scene_col"] == 0
    assert tiles.iloc[-1]["scene_row_stop"] == 100 and tiles.iloc[-1]["scene_col_stop"] == 130
    # polygons in map coordinates: the first tile starts in the mirrored border
    x0, y0 = TRANSFORM * (first.col, first.row)
    minx, miny, maxx, maxy = tiles.geometry.iloc[0].bounds
    assert minx == pytest.approx(x0) and maxy == pytest.approx(y0)
    assert maxx - minx == pytest.approx(first.width * 0.15)
    assert tiles.total_bounds[2] == pytest.approx((TRANSFORM * (last.col_stop, 0))[0])


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    plan = plan_tiles(50, 50, 32, 8)
    path = write_plan(plan, "EPSG:32636", TRANSFORM, tmp_path / "p.gpkg")
    with pytest.raises(OutputExistsError):
        write_plan(plan, "EPSG:32636", TRANSFORM, path)
    write_plan(plan, "EPSG:32636", TRANSFORM, path, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name != "p.gpkg"]  # no temporaries left


def test_read_plan_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_plan(tmp_path / "nope.gpkg")
    with pytest.raises(InputError, match="not a tile plan"):
        read_plan(SAMPLE / "buildings.gpkg")
    junk = tmp_path / "junk.gpkg"
    junk.write_text("not a geopackage")
    with pytest.raises(InputError):
        read_plan(junk)


def test_predict_with_plan_equals_predict_without(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene(height=90, width=110)
    result = plan_scene(scene, tmp_path / "plan.gpkg", tiny_model, overlap=16, border=8)
    opts = PredictOptions(overlap=16, border=8, footprints=False, device="cpu", precision="float32")
    planned = PredictOptions(
        plan=read_plan(result.path), footprints=False, device="cpu", precision="float32"
    )
    a = predict_scene(scene, tmp_path / "a", tiny_model, opts)
    b = predict_scene(scene, tmp_path / "b", tiny_model, planned)
    assert a.tiles == b.tiles == len(result.plan)
    with rasterio.open(a.probability) as ra, rasterio.open(b.probability) as rb:
        assert np.array_equal(ra.read(), rb.read())
        assert np.array_equal(ra.read_masks(1), rb.read_masks(1))


def test_plan_of_another_grid_is_refused(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    plan_scene(make_scene(height=60, width=60), tmp_path / "p.gpkg", tiny_model)
    other = make_scene(height=70, width=60)
    opts = PredictOptions(plan=read_plan(tmp_path / "p.gpkg"), device="cpu")
    with pytest.raises(InputError, match="re-plan"):
        predict_scene(other, tmp_path / "o", tiny_model, opts)


def test_plan_of_a_resampled_scene(tiny_model: Path, tmp_path: Path) -> None:
    crop = kampala_crop(tmp_path / "crop.tif")  # 0.075 m pixels, model at 0.15 m
    result = plan_scene(crop, tmp_path / "p.gpkg", tiny_model)
    assert result.resampled
    assert (result.plan.height, result.plan.width) == (127, 127)  # 256 * 0.0746 / 0.15
    stored = read_stored_plan(result.path)
    assert stored.crs.to_epsg() == 3857
    assert stored.meta["resampled"] is True
    with rasterio.open(crop) as src:
        bounds = src.bounds
    tiles = gpd.read_file(result.path, layer="tiles")
    assert tiles.crs.to_epsg() == 3857
    union = tiles.union_all().bounds
    assert union[0] <= bounds.left and union[2] >= bounds.right
    assert union[1] <= bounds.bottom and union[3] >= bounds.top
    # --no-resample plans on the scene's own grid
    own = plan_scene(crop, tmp_path / "q.gpkg", tiny_model, resample=False)
    assert (own.plan.height, own.plan.width) == (256, 256) and not own.resampled


def test_cli_plan_predict_vectorize(
    make_scene: MakeScene, tiny_model: Path, tmp_path: Path
) -> None:
    scene = make_scene(height=80, width=80, name="s.tif")
    plan = tmp_path / "s.tiles.gpkg"
    result = runner.invoke(
        app, ["plan", str(scene), "--model", str(tiny_model), "--out", str(plan)]
    )
    assert result.exit_code == 0, result.output
    assert "tiles" in result.output
    again = runner.invoke(app, ["plan", str(scene), "--model", str(tiny_model), "--out", str(plan)])
    assert "exists" in one_line_error(again)
    out = tmp_path / "out"
    args = ["predict", str(scene), "-m", str(tiny_model), "--plan", str(plan), "-o", str(out)]
    result = runner.invoke(app, [*args, "--no-footprints", "-q", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    prob = out / "s.prob.tif"
    assert prob.exists() and not (out / "s.buildings.gpkg").exists()
    bad = runner.invoke(app, [*args[:-2], "--plan", str(tmp_path / "nope.gpkg"), "-o", str(out)])
    assert "does not exist" in one_line_error(bad)

    fp = tmp_path / "s.buildings.gpkg"
    result = runner.invoke(app, ["vectorize", str(prob), "--out", str(fp), "-m", str(tiny_model)])
    assert result.exit_code == 0, result.output
    gdf = gpd.read_file(fp, layer="buildings")
    assert gdf.crs.to_epsg() == 32636
    assert {"id", "area_m2", "confidence"} <= set(gdf.columns)
    again = runner.invoke(app, ["vectorize", str(prob), "--out", str(fp)])
    assert "exists" in one_line_error(again)
    bad = runner.invoke(app, ["vectorize", str(prob), "--out", str(fp), "--threshold", "1.5"])
    assert "threshold" in one_line_error(bad)
    missing = runner.invoke(app, ["vectorize", str(tmp_path / "x.tif"), "--out", str(fp)])
    assert "does not exist" in one_line_error(missing)


def test_merge_tags_scenes_and_reprojects(tmp_path: Path) -> None:
    truth = gpd.read_file(SAMPLE / "buildings.gpkg").iloc[:5]
    a, b = tmp_path / "a.buildings.gpkg", tmp_path / "b.x.buildings.gpkg"
    truth.iloc[:3].to_file(a, layer="buildings")
    truth.iloc[3:].to_crs(4326).to_file(b, layer="buildings")
    assert scene_id_of(b) == "b.x"
    merged = merge_footprints([("a", a), ("b.x", b)], tmp_path / "all.gpkg")
    assert list(merged["scene_id"]) == ["a"] * 3 + ["b.x"] * 2
    back = gpd.read_file(tmp_path / "all.gpkg", layer="buildings")
    assert back.crs.to_epsg() == 3857 and len(back) == 5
    assert back.geometry.iloc[4].equals_exact(truth.geometry.iloc[4], 1e-3)
    with pytest.raises(InputError, match="repeat"):
        merge_footprints([("a", a), ("a", b)], tmp_path / "x.gpkg")
    result = runner.invoke(
        app, ["merge", str(a), str(b), "--scene-id", "a", "--out", str(tmp_path / "y.gpkg")]
    )
    assert "--scene-id" in one_line_error(result)
    result = runner.invoke(app, ["merge", str(a), str(b), "--out", str(tmp_path / "z.gpkg")])
    assert result.exit_code == 0, result.output
    assert set(gpd.read_file(tmp_path / "z.gpkg")["scene_id"]) == {"a", "b.x"}


def test_tile_plan_carries_its_qgis_style(tmp_path: Path) -> None:
    import sqlite3

    from geounet.core.tiling import plan_tiles
    from geounet.inference.tileplan import write_plan

    plan = plan_tiles(100, 120, 64, 16, 8, multiple=16)
    transform = Affine(0.5, 0, 500000, 0, -0.5, 40000)
    out = write_plan(plan, "EPSG:32636", transform, tmp_path / "p.gpkg")
    with sqlite3.connect(out) as con:
        rows = con.execute(
            "SELECT f_table_name, useAsDefault, styleQML FROM layer_styles"
        ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [("tiles", 1)]
    assert "<qgis" in rows[0][2]
