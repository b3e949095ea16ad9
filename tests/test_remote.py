"""Scenes from where mappers have them: COG URLs and XYZ tile services, over a local server.

No test reaches the internet: ``tests.http_server`` serves files on 127.0.0.1 with range
requests, and can stall.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from typer.testing import CliRunner

from geounet.cli import app
from geounet.errors import InputError
from geounet.io.remote import (
    WEB_MERCATOR_HALF,
    gdal_path,
    resolve_scene,
    source_stem,
    tile_window,
)
from tests.http_server import serve, write_tile_pyramid

runner = CliRunner()
ZOOM = 20
TILE_X, TILE_Y = 622_000, 523_000  # near Kampala at zoom 20


def grid_scene(path: Path, tiles: int = 2) -> tuple[Path, tuple[float, float, float, float]]:
    """An RGB scene exactly on the XYZ grid of zoom 20, and its W,S,E,N box (inset)."""
    res = 2 * WEB_MERCATOR_HALF / 2**ZOOM / 256
    left = -WEB_MERCATOR_HALF + TILE_X * 256 * res
    top = WEB_MERCATOR_HALF - TILE_Y * 256 * res
    size = 256 * tiles
    yy, xx = np.mgrid[0:size, 0:size]
    data = np.stack([(np.sin(yy / 9) + np.cos(xx / 13) + 2) * 60, yy % 200, xx % 180])
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8",
        "crs": "EPSG:3857", "transform": from_origin(left, top, res, res), "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.uint8))
        bounds = dst.bounds
    west, south, east, north = rasterio.warp.transform_bounds("EPSG:3857", 4326, *bounds)
    inset = 1e-7
    return path, (west + inset, south + inset, east - inset, north - inset)


def predict(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["predict", *args, "-q"])
    return result.exit_code, result.output


def read(path: Path) -> tuple[np.ndarray, np.ndarray, object]:
    with rasterio.open(path) as src:
        return src.read(), src.read_masks(1), src.transform


def test_names_and_paths_of_remote_sources() -> None:
    assert gdal_path("https://h.org/a/b.tif?x=1") == "/vsicurl/https://h.org/a/b.tif?x=1"
    assert gdal_path("s3://bucket/k/scene.tif") == "/vsis3/bucket/k/scene.tif"
    assert gdal_path("/vsigs/b/a.tif") == "/vsigs/b/a.tif"
    assert gdal_path("local/a.tif") == "local/a.tif"
    assert source_stem("https://h.org/a/scene%201.tif?sig=2") == "scene_1"
    assert source_stem("https://tiles.h.org/layer/{z}/{x}/{y}.png") == "layer"
    assert source_stem("/data/x.y.tif") == "x.y"


def test_tile_window_covers_the_box_with_whole_tiles(tmp_path: Path) -> None:
    _, bbox = grid_scene(tmp_path / "s.tif")
    window = tile_window(bbox, ZOOM)
    assert (window.col, window.row) == (TILE_X * 256, TILE_Y * 256)
    assert (window.width, window.height, window.tiles) == (512, 512, 4)
    with pytest.raises(InputError, match="W,S,E,N in degrees"):
        tile_window((32.6, 0.3, 32.5, 0.4), ZOOM)
    with pytest.raises(InputError, match="tiles"):
        tile_window((30.0, 0.0, 33.0, 3.0), ZOOM)


def test_a_cog_url_predicts_as_the_local_file(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    scene, _ = grid_scene(tmp_path / "www" / "scene.tif")
    code, output = predict(str(scene), "-m", str(tiny_model), "-o", str(tmp_path / "local"))
    assert code == 0, output
    with serve(tmp_path / "www") as server:
        url = f"{server.url}/scene.tif"
        code, output = predict(url, "-m", str(tiny_model), "-o", str(tmp_path / "web"))
        assert code == 0, output
        assert server.ranges, "read by range requests"
    assert output.startswith(f"{url}: ")
    assert sorted(p.name for p in (tmp_path / "web").iterdir()) == [
        "scene.buildings.gpkg", "scene.prob.qmd", "scene.prob.qml", "scene.prob.tif"
    ]  # fmt: skip
    local, web = (
        read(tmp_path / "local" / "scene.prob.tif"),
        read(tmp_path / "web" / "scene.prob.tif"),
    )
    np.testing.assert_array_equal(local[0], web[0])
    assert local[2] == web[2]


def test_a_tile_service_predicts_as_the_scene_it_was_cut_from(
    tiny_model: Path, tmp_path: Path
) -> None:
    scene, bbox = grid_scene(tmp_path / "scene.tif")
    write_tile_pyramid(scene, tmp_path / "www", ZOOM)
    code, output = predict(str(scene), "-m", str(tiny_model), "-o", str(tmp_path / "local"))
    assert code == 0, output
    box = ",".join(f"{v:.9f}" for v in bbox)
    cache = tmp_path / "cache"
    with serve(tmp_path / "www") as server:
        template = f"{server.url}/{{z}}/{{x}}/{{y}}.png"
        args = [template, "--bbox", box, "--zoom", str(ZOOM), "--tile-cache", str(cache)]
        code, output = predict(*args, "-m", str(tiny_model), "-o", str(tmp_path / "xyz"))
        assert code == 0, output
        fetched = [r for r in server.requests if r.endswith(".png")]
        assert len(fetched) == 4
        # a rerun reads the cached tiles: nothing is fetched again
        code, output = predict(*args, "-m", str(tiny_model), "-o", str(tmp_path / "again"))
        assert code == 0, output
        assert [r for r in server.requests if r.endswith(".png")] == fetched
    assert (tmp_path / "xyz" / f"127.0.0.1_z{ZOOM}.prob.tif").is_file()  # named by its host
    local = read(tmp_path / "local" / "scene.prob.tif")
    for folder in ("xyz", "again"):
        (prob,) = (tmp_path / folder).glob("*.prob.tif")
        got = read(prob)
        np.testing.assert_array_equal(local[0], got[0])
        np.testing.assert_array_equal(local[1], got[1])
        assert local[2] == got[2]


def test_tile_templates_need_a_box_and_a_zoom(tmp_path: Path) -> None:
    template = "https://tiles.example.org/{z}/{x}/{y}.png"
    with pytest.raises(InputError, match="pass --bbox W,S,E,N"):
        resolve_scene(template)
    with pytest.raises(InputError, match="for XYZ/TMS tile services"):
        resolve_scene("scene.tif", (32.5, 0.3, 32.6, 0.4), 19)
    code, output = predict(template, "--bbox", "1,2,3", "--zoom", "19", "-o", str(tmp_path))
    assert code == 2 and "four numbers W,S,E,N" in output


def _silent_port() -> tuple[socket.socket, int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server, server.getsockname()[1]


def test_servers_that_say_no_or_stall_get_one_line_errors(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "2")
    monkeypatch.setenv("GDAL_HTTP_CONNECTTIMEOUT", "2")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    out = tmp_path / "out"
    closed, port = _silent_port()
    closed.close()  # nothing listens there any more: the connection is refused
    stalled, stalled_port = _silent_port()  # listens, never answers
    try:
        with serve(tmp_path) as server:
            cases = [
                (f"{server.url}/missing.tif", "HTTP 404"),
                (f"http://127.0.0.1:{port}/a.tif", "refused"),
                (f"http://127.0.0.1:{stalled_port}/a.tif", "did not answer within 2 s"),
            ]
            for url, needle in cases:
                t0 = time.perf_counter()
                code, output = predict(url, "-m", str(tiny_model), "-o", str(out))
                lines = [line for line in output.splitlines() if line.strip()]
                assert code == 2 and len(lines) == 1, output
                assert url in lines[0] and needle in lines[0], lines[0]
                assert time.perf_counter() - t0 < 30
    finally:
        stalled.close()
    assert not out.exists()


def test_training_copies_a_url_scene_once(tmp_path: Path) -> None:
    from geounet.io.raster import local_copy

    (tmp_path / "www").mkdir()
    scene, _ = grid_scene(tmp_path / "www" / "scene.tif")
    assert local_copy(str(scene)) == scene  # a local file stays where it is
    with serve(tmp_path / "www") as server:
        url = f"{server.url}/scene.tif"
        copy = local_copy(url, tmp_path / "cache")
        asked = len(server.requests)
        assert local_copy(url, tmp_path / "cache") == copy and len(server.requests) == asked
    assert copy.name == "scene.tif" and copy.is_relative_to(tmp_path / "cache")
    with rasterio.open(scene) as a, rasterio.open(copy) as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert (a.transform, a.crs) == (b.transform, b.crs)


def test_plan_evaluate_and_an_aoi_take_remote_scenes_too(tiny_model: Path, tmp_path: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    (tmp_path / "www").mkdir()
    scene, bbox = grid_scene(tmp_path / "www" / "scene.tif")
    write_tile_pyramid(scene, tmp_path / "tiles", ZOOM)
    truth = tmp_path / "truth.gpkg"
    with rasterio.open(scene) as src:
        left, bottom, right, top = src.bounds
    roofs = [
        box(left + 5, bottom + 5, left + 15, bottom + 12),
        box(right - 20, top - 9, right - 8, top - 2),
    ]
    gpd.GeoDataFrame(geometry=roofs, crs=3857).to_file(truth, layer="buildings")
    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[box(*bbox)], crs=4326).to_file(aoi)
    code, output = predict(str(scene), "-m", str(tiny_model), "-o", str(tmp_path / "local"))
    assert code == 0, output
    prob = tmp_path / "local" / "scene.prob.tif"
    with serve(tmp_path / "www") as web, serve(tmp_path / "tiles") as tiles:
        url = f"{web.url}/scene.tif"
        plans = []
        for source, name in ((str(scene), "local"), (url, "web")):
            plan = tmp_path / f"{name}.tiles.gpkg"
            result = runner.invoke(app, ["plan", source, "-m", str(tiny_model), "-o", str(plan)])
            assert result.exit_code == 0, result.output
            plans.append(gpd.read_file(plan, layer="tiles").geometry)
        assert plans[0].geom_equals(plans[1]).all()
        reports = []
        for source, name in ((str(scene), "ev_local"), (url, "ev_web")):
            args = ["evaluate", source, "-t", str(truth), "--prob", str(prob), "-o"]
            result = runner.invoke(app, [*args, str(tmp_path / name)])
            assert result.exit_code == 0, result.output
            reports.append(json.loads((tmp_path / name / "report.json").read_text()))
        assert reports[0]["pixel"] == reports[1]["pixel"]
        assert reports[1]["scene"]["name"] == url
        template = f"{tiles.url}/{{z}}/{{x}}/{{y}}.png"
        code, output = predict(template, "--aoi", str(aoi), "--zoom", str(ZOOM), "--tile-cache",
                               str(tmp_path / "cache"), "-m", str(tiny_model), "-o",
                               str(tmp_path / "xyz"))  # fmt: skip
        assert code == 0, output
    (xyz,) = (tmp_path / "xyz").glob("*.prob.tif")
    np.testing.assert_array_equal(read(prob)[0], read(xyz)[0])
