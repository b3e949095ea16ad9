"""Footprints for OpenStreetMap (a JOSM-ready .osm file) and as RFC 7946 GeoJSON."""

from __future__ import annotations

import importlib.util
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely
import shapely.affinity
from shapely.geometry import Polygon, box
from typer.testing import CliRunner

from geounet.cli import app
from geounet.core.provenance import Provenance
from geounet.errors import InputError
from geounet.footprints.export import export_geojson, export_osm
from geounet.footprints.vectorize import write_footprints

runner = CliRunner()
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

# EPSG:32636 metres near Kampala: two roofs sharing a wall, and one with a courtyard
LEFT = box(453000, 38000, 453010, 38008)
RIGHT = box(453010, 38000, 453018, 38008)
YARD = Polygon(
    [(453030, 38000), (453050, 38000), (453050, 38020), (453030, 38020)],
    [[(453036, 38006), (453044, 38006), (453044, 38014), (453036, 38014)]],
)


@pytest.fixture
def footprints(tmp_path: Path) -> Path:
    made = Provenance(
        "9.9", "bundled (m.safetensors)", "ab" * 32, 0.4, 0.3, "none", 1024, 128, 32,
        "town.tif", "2026-12-04T00:00:00+00:00",
    )  # fmt: skip
    gdf = gpd.GeoDataFrame(
        {"id": [1, 2, 3], "area_m2": [80.0, 64.0, 336.0], "confidence": [0.9, 0.8, 0.7]},
        geometry=[LEFT, RIGHT, YARD],
        crs="EPSG:32636",
    )
    path = tmp_path / "town.buildings.gpkg"
    write_footprints(gdf, path, metadata=made.tags())
    return path


def _areas(path: Path) -> list[shapely.Geometry]:
    """The buildings of an .osm file, assembled by GDAL's OSM driver (ways, multipolygons)."""
    # GDAL's own node index takes positive ids only; new objects have negative ones
    pyogrio.set_gdal_config_options({"OSM_USE_CUSTOM_INDEXING": "NO"})
    try:
        frame = pyogrio.read_dataframe(path, layer="multipolygons")
    finally:
        pyogrio.set_gdal_config_options({"OSM_USE_CUSTOM_INDEXING": None})
    assert set(frame["building"]) == {"yes"}
    return list(frame.geometry)


def test_an_osm_file_holds_new_buildings_that_read_back_as_the_same_polygons(
    footprints: Path, tmp_path: Path
) -> None:
    out = tmp_path / "town.osm"
    done = export_osm(footprints, out)
    assert done.buildings == 3 and done.skipped == 0
    assert done.source == "town.tif; geounet 9.9, model bundled (m.safetensors)"
    root = ET.parse(out).getroot()
    assert root.tag == "osm" and root.get("version") == "0.6"
    ids = [int(e.get("id", "0")) for e in root if e.tag in ("node", "way", "relation")]
    assert ids and all(i < 0 for i in ids)  # new objects for JOSM
    nodes = [e for e in root if e.tag == "node"]
    assert len(nodes) == 4 + 4 - 2 + 8  # the shared wall's two corners are one node each
    (relation,) = [e for e in root if e.tag == "relation"]  # the courtyard roof
    tags = {t.get("k"): t.get("v") for t in relation if t.tag == "tag"}
    assert tags == {"type": "multipolygon", "building": "yes", "source": done.source}
    roles = sorted(m.get("role") for m in relation if m.tag == "member")
    assert roles == ["inner", "outer"]
    # GDAL assembles every building; they are the exported polygons, in EPSG:4326
    back = sorted(_areas(out), key=lambda g: g.centroid.x)
    want = gpd.GeoSeries([LEFT, RIGHT, YARD], crs="EPSG:32636").to_crs("EPSG:4326")
    assert len(back) == 3
    for got, expected in zip(back, want, strict=True):
        assert got.is_valid
        assert got.hausdorff_distance(expected) < 1e-7  # rounded to 7 decimals (1 cm)


def test_a_corner_on_a_neighbours_wall_is_a_node_of_both(tmp_path: Path) -> None:
    # a small roof against the middle of a long one's wall (a T), at sub-millimetre
    # coordinates: without the corner in both ways, rounding to 7 decimals puts it
    # inside or outside the long roof, and JOSM reports crossing buildings
    long = box(453000.0003, 38000.0004, 453020.0003, 38006.0004)
    small = box(453007.0003, 38006.0004, 453012.0003, 38011.0004)
    path = tmp_path / "t.buildings.gpkg"
    gdf = gpd.GeoDataFrame({"id": [1, 2]}, geometry=[long, small], crs="EPSG:32636")
    write_footprints(gdf, path)
    out = tmp_path / "t.osm"
    export_osm(path, out)
    root = ET.parse(out).getroot()
    ways = [[nd.get("ref") for nd in w if nd.tag == "nd"] for w in root if w.tag == "way"]
    assert len(ways) == 2
    shared = set(ways[0]) & set(ways[1])
    assert len(shared) == 2  # the small roof's two corners on the wall are nodes of both
    long_back, small_back = sorted(_areas(out), key=lambda g: g.area, reverse=True)
    assert long_back.is_valid and small_back.is_valid
    overlap = gpd.GeoSeries([long_back.intersection(small_back)], crs="EPSG:4326")
    assert overlap.to_crs("EPSG:32636").area.iloc[0] < 1e-6  # touching, not crossing
    want = gpd.GeoSeries([long], crs="EPSG:32636").to_crs("EPSG:4326").iloc[0]
    assert long_back.hausdorff_distance(want) < 1e-7  # the wall's new node is on it
    # scripts/osm_crossings.py counts the same: one pair touching, none crossing, no
    # corner on the other's wall that is not its node
    spec = importlib.util.spec_from_file_location("osm_crossings", SCRIPTS / "osm_crossings.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.crossings(script.buildings(out), 1e-4, 0.02) == (1, 0, 0)
    # and JOSM's almost-right-angle test: a square, no; a corner 0.5 degrees off, yes
    square = shapely.affinity.rotate(box(0, 0, 10, 6), 30)
    skewed = shapely.affinity.skew(box(20, 0, 30, 6), xs=0.5)
    both = gpd.GeoSeries([square, skewed], crs="EPSG:3857")
    assert script.almost_square(both) == 1


def test_corners_a_few_millimetres_apart_are_one_node(tmp_path: Path) -> None:
    # two roofs meeting corner to corner, 3.6 mm apart: one node, not two that swap places
    first = box(453000, 38000, 453010, 38008)
    second = box(453010.003, 38008.002, 453018, 38016)
    path = tmp_path / "c.buildings.gpkg"
    write_footprints(gpd.GeoDataFrame(geometry=[first, second], crs="EPSG:32636"), path)
    out = tmp_path / "c.osm"
    export_osm(path, out)
    root = ET.parse(out).getroot()
    ways = [{nd.get("ref") for nd in w if nd.tag == "nd"} for w in root if w.tag == "way"]
    assert len(ways[0] & ways[1]) == 1
    assert len([e for e in root if e.tag == "node"]) == 7


def test_geojson_is_rfc_7946(footprints: Path, tmp_path: Path) -> None:
    out = tmp_path / "town.geojson"
    done = export_geojson(footprints, out)
    back = gpd.read_file(out)
    assert done.buildings == 3 and back.crs.to_epsg() == 4326
    assert list(back["id"]) == [1, 2, 3]
    yard = back.geometry.iloc[2]
    assert yard.exterior.is_ccw and not yard.interiors[0].is_ccw  # right-hand rule
    assert '"crs"' not in out.read_text()  # RFC 7946 has no crs member
    assert pyogrio.read_info(out)["features"] == 3


def test_cli_export_names_the_output_and_refuses_bad_input(
    footprints: Path, tmp_path: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing but the one line (pyogrio warned here)
        result = runner.invoke(app, ["export", str(footprints), "--to", "osm"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "town.osm").is_file()
    assert "3 buildings -> " in result.output and "source='town.tif; geounet 9.9" in result.output
    again = runner.invoke(app, ["export", str(footprints), "--to", "osm"])
    assert again.exit_code != 0 and "--overwrite" in again.output
    missing = runner.invoke(app, ["export", str(tmp_path / "none.gpkg"), "--to", "geojson"])
    assert missing.exit_code != 0 and "do not exist" in missing.output
    assert "Traceback" not in missing.output
    with pytest.raises(InputError, match=r"\.osm"):
        export_osm(footprints, tmp_path / "town.xml")
