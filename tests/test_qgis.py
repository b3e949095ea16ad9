"""QGIS-ready outputs: styles in the GeoPackage, .qml sidecars, project files, GDAL checks.

The unit tests need nothing but the venv. ``test_outputs_and_project_in_headless_qgis``
runs ``tests/qgis_check.py`` with the system Python of Debian's ``python3-qgis`` and is
skipped where ``/usr/bin/python3 -c "import qgis.core"`` fails; the ``ogrinfo`` test is
skipped without GDAL's command-line tools (``gdal-bin``).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import warnings
import xml.etree.ElementTree as ET
import zipfile
from functools import cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from shapely.geometry import box

from geounet.core.tiling import plan_tiles
from geounet.errors import InputError, OutputError
from geounet.evaluation.evaluate import Evaluation
from geounet.evaluation.report import write_objects
from geounet.footprints.vectorize import write_footprints
from geounet.inference.tileplan import write_plan
from geounet.io.qml import (
    CONFIDENCE_CLASSES,
    PROBABILITY_RAMP,
    STATUS_CLASSES,
    footprints_qml,
    probability_qml,
)
from geounet.io.raster import describe_probability, probability_profile, write_cog
from geounet.io.styles import (
    sidecar_path,
    write_layer_style,
    write_probability_style,
)
from geounet.qgis.project import SceneLayers, project_path, project_xml, write_project
from tests.conftest import MakeScene

SYSTEM_PYTHON = Path("/usr/bin/python3")
CHECK = Path(__file__).with_name("qgis_check.py")


@cache
def qgis_available() -> bool:
    """Whether the system Python imports QGIS (Debian's python3-qgis)."""
    if not SYSTEM_PYTHON.exists():
        return False
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import qgis.core"], env=env, capture_output=True, timeout=60
    )
    return proc.returncode == 0


def _prob(scene: Path, out: Path, dtype: str = "uint8") -> Path:
    """A probability COG on the scene grid: a ramp left to right, the top-left corner masked."""
    with rasterio.open(scene) as src:
        h, w = src.height, src.width
        ramp = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
        valid = np.ones((h, w), dtype=bool)
        valid[:5, :7] = False
        work = out.with_name(out.name + ".work.tif")
        with (
            rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True),
            rasterio.open(work, "w", **probability_profile(src, dtype)) as dst,
        ):
            describe_probability(dst, 1.0 if dtype == "float32" else 1 / 255)
            dst.write(ramp if dtype == "float32" else np.round(ramp * 255).astype("uint8"), 1)
            dst.write_mask(valid)
    write_cog(work, out)
    work.unlink()
    return out


def _footprints(scene: Path) -> gpd.GeoDataFrame:
    with rasterio.open(scene) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    step = (right - left) / 5
    geoms = [box(left + i * step, bottom + 1, left + (i + 0.8) * step, top - 1) for i in range(4)]
    return gpd.GeoDataFrame(
        {
            "id": np.arange(1, 5),
            "area_m2": [g.area for g in geoms],
            "confidence": [0.3, 0.6, 0.85, 0.95],
        },
        geometry=geoms,
        crs=crs,
    )


@pytest.fixture
def outputs(make_scene: MakeScene, tmp_path: Path) -> dict[str, Path]:
    """A scene (67 x 45 px, RGB + alpha), its probability COG, footprints, objects, plan."""
    alpha = np.full((45, 67), 255, dtype=np.uint8)
    alpha[:5, :7] = 0
    scene = make_scene(alpha=alpha, name="tiny.tif")
    out = tmp_path / "out"
    out.mkdir()
    prob = _prob(scene, out / "tiny.prob.tif")
    write_probability_style(prob)
    gdf = _footprints(scene)
    fp = out / "tiny.buildings.gpkg"
    write_footprints(gdf, fp)
    geoms = np.array(list(gdf.geometry), dtype=object)
    ev = Evaluation(
        report={},
        tp=geoms[:2],
        fp=geoms[2:3],
        fn=geoms[3:],
        tp_iou=np.array([0.9, 0.7]),
        fp_iou=np.array([0.2]),
        fn_iou=np.array([0.0]),
        crs=gdf.crs,
    )
    objects = write_objects(ev, out / "eval" / "objects.gpkg")
    with rasterio.open(scene) as src:
        plan = plan_tiles(src.height, src.width, 32, 8, 0, 1)
        tiles = write_plan(plan, src.crs, src.transform, out / "plan.gpkg")
    return {
        "scene": scene,
        "prob": prob,
        "footprints": fp,
        "objects": objects,
        "plan": tiles,
        "out": out,
    }


# ----------------------------------------------------------------------------- styles


def _style_rows(gpkg: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(gpkg) as con:
        return con.execute(
            "SELECT f_table_name, f_geometry_column, styleName, styleQML, styleSLD, "
            "useAsDefault FROM layer_styles"
        ).fetchall()


def test_footprints_carry_a_default_style_naming_confidence(outputs: dict[str, Path]) -> None:
    rows = _style_rows(outputs["footprints"])
    assert len(rows) == 1
    table, geom_col, name, qml, sld, default = rows[0]
    assert (table, geom_col, name, default) == ("buildings", "geom", "geounet", 1)
    root = ET.fromstring(qml.split("\n", 1)[1])  # after the doctype line
    renderer = root.find("renderer-v2")
    assert renderer is not None
    assert renderer.get("type") == "graduatedSymbol"
    assert renderer.get("attr") == "confidence"
    ranges = renderer.findall("ranges/range")
    assert len(ranges) == len(CONFIDENCE_CLASSES)
    assert float(ranges[0].get("lower", "nan")) == 0.0
    assert float(ranges[-1].get("upper", "nan")) == 1.0
    # outlines only: no fill brush
    styles = {o.get("value") for o in root.iter("Option") if o.get("name") == "style"}
    assert styles == {"no"}
    assert "confidence" in ET.fromstring(sld.split("\n", 1)[1]).itertext()


def test_layer_styles_is_registered_and_gpkg_described(outputs: dict[str, Path]) -> None:
    with sqlite3.connect(outputs["footprints"]) as con:
        contents = dict(con.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
        (description,) = con.execute(
            "SELECT description FROM gpkg_contents WHERE table_name = 'buildings'"
        ).fetchone()
    assert contents == {"buildings": "features", "layer_styles": "attributes"}
    assert "square metres" in description and "confidence" in description
    # still a plain GeoPackage for GDAL: same features, layer_styles as a table
    assert len(gpd.read_file(outputs["footprints"], layer="buildings")) == 4


def test_objects_layer_is_categorised_on_status(outputs: dict[str, Path]) -> None:
    gdf = gpd.read_file(outputs["objects"], layer="objects")
    assert list(gdf["status"]) == ["TP", "TP", "FP", "FN"]
    np.testing.assert_allclose(gdf["iou"], [0.9, 0.7, 0.2, 0.0])
    assert (gdf["area_m2"] > 0).all()
    ((table, _, _, qml, _, _),) = _style_rows(outputs["objects"])
    renderer = ET.fromstring(qml.split("\n", 1)[1]).find("renderer-v2")
    assert table == "objects" and renderer is not None
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "status"
    cats = [c.get("value") for c in renderer.findall("categories/category")]
    assert cats == ["TP", "FP", "FN"] == [b.lower for b in STATUS_CLASSES]
    symbols = renderer.find("symbols")
    assert symbols is not None
    colours = {o.get("value") for o in symbols.iter("Option") if o.get("name") == "outline_color"}
    assert len(colours) == 3


def test_restyling_replaces_the_default(outputs: dict[str, Path]) -> None:
    write_layer_style(outputs["footprints"], "buildings", footprints_qml(), name="other")
    rows = _style_rows(outputs["footprints"])
    assert sorted((r[2], r[5]) for r in rows) == [("geounet", 0), ("other", 1)]
    with pytest.raises(OutputError, match="no vector layer"):
        write_layer_style(outputs["footprints"], "nope", footprints_qml())


@pytest.mark.parametrize(("dtype", "top"), [("uint8", 255.0), ("float32", 1.0)])
def test_probability_qml_ramp_and_transparency(dtype: str, top: float) -> None:
    root = ET.fromstring(probability_qml(dtype).split("\n", 1)[1])
    rr = root.find("pipe/rasterrenderer")
    assert rr is not None and rr.get("type") == "singlebandpseudocolor"
    assert rr.get("nodataColor") == ""  # no data drawn transparent
    assert 0 < float(rr.get("opacity", "1")) < 1
    shader = rr.find("rastershader/colorrampshader")
    assert shader is not None and float(shader.get("maximumValue", "0")) == top
    items = shader.findall("item")
    assert len(items) == len(PROBABILITY_RAMP)
    values = [float(i.get("value", "nan")) for i in items]
    alphas = [int(i.get("alpha", "-1")) for i in items]
    assert values[0] == 0 and values[-1] == top and values == sorted(values)
    assert alphas[0] == 0 and alphas == sorted(alphas) and alphas[-1] < 255


def test_probability_sidecars(outputs: dict[str, Path]) -> None:
    qml = sidecar_path(outputs["prob"])
    assert qml.name == "tiny.prob.qml" and qml.is_file()
    assert "singlebandpseudocolor" in qml.read_text()
    qmd = ET.fromstring(sidecar_path(outputs["prob"], ".qmd").read_text().split("\n", 1)[1])
    assert "value / 255" in (qmd.findtext("abstract") or "")
    assert not list(outputs["out"].glob(".*"))  # no temporary files left


# ----------------------------------------------------------------------------- project


def _read_qgz(path: Path) -> ET.Element:
    with zipfile.ZipFile(path) as zf:
        (name,) = zf.namelist()
        assert name == f"{path.stem}.qgs"
        text = zf.read(name).decode()
    return ET.fromstring(text.split("\n", 1)[1])


def test_project_references_outputs_relatively_in_scene_crs(outputs: dict[str, Path]) -> None:
    o = outputs
    layers = SceneLayers(o["scene"], o["prob"], o["footprints"], o["objects"], o["plan"])
    path = write_project(project_path(o["out"], o["scene"]), layers)
    assert path.name == "tiny.qgz"
    root = _read_qgz(path)
    assert root.findtext("projectCrs/spatialrefsys/authid") == "EPSG:32636"
    sources = [el.text or "" for el in root.iter("datasource")]
    assert sources == [
        "./eval/objects.gpkg|layername=objects",
        "./tiny.buildings.gpkg|layername=buildings",
        "./plan.gpkg|layername=tiles",
        "./tiny.prob.tif",
        "../tiny.tif",
    ]
    for lyr in root.iter("maplayer"):
        assert lyr.findtext("srs/spatialrefsys/authid") == "EPSG:32636"
        assert lyr.findtext("resourceMetadata/abstract")
    order = [el.get("id") for el in root.findall("layerorder/layer")]
    assert order[-1] == root.findall("projectlayers/maplayer")[-1].findtext("id")
    assert order[-1].startswith("scene_")  # the scene at the bottom
    assert root.findtext("properties/Paths/Absolute") == "false"
    with rasterio.open(o["scene"]) as src:
        left, bottom, right, top = src.bounds
    ext = [float(root.findtext(f"mapcanvas/extent/{k}") or "nan") for k in ("xmin", "ymax")]
    assert ext == [left, top]
    assert not list(o["out"].glob(".*"))


def test_project_qgs_and_several_scenes(outputs: dict[str, Path], make_scene: MakeScene) -> None:
    other = make_scene(name="other.tif", seed=3)
    path = write_project(
        outputs["out"] / "two.qgs",
        [SceneLayers(outputs["scene"], probability=outputs["prob"]), SceneLayers(other)],
        title="Two scenes",
    )
    root = ET.fromstring(path.read_text().split("\n", 1)[1])
    assert root.findtext("title") == "Two scenes"
    groups = root.findall("layer-tree-group/layer-tree-group")
    assert [g.get("name") for g in groups] == ["tiny", "other"]
    assert len(root.findall("projectlayers/maplayer")) == 3


def test_project_errors(outputs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.qgz or \.qgs"):
        write_project(tmp_path / "p.txt", SceneLayers(outputs["scene"]))
    with pytest.raises(InputError, match="not found"):
        project_xml(tmp_path / "p.qgz", SceneLayers(tmp_path / "missing.tif"))
    with pytest.raises(InputError, match="at least one scene"):
        project_xml(tmp_path / "p.qgz", [])


# ----------------------------------------------------------------------------- GDAL


def test_probability_is_a_valid_cog(outputs: dict[str, Path]) -> None:
    with rasterio.open(outputs["prob"]) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.profile["tiled"]
        assert src.mask_flag_enums[0][0].name == "per_dataset"


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo is not installed")
def test_geopackages_pass_ogrinfo(outputs: dict[str, Path]) -> None:
    for path, layer, n in (
        (outputs["footprints"], "buildings", 4),
        (outputs["objects"], "objects", 4),
    ):
        proc = subprocess.run(
            ["ogrinfo", "-so", str(path), layer], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert f"Feature Count: {n}" in proc.stdout
        assert 'ID["EPSG",32636]' in proc.stdout or "EPSG:32636" in proc.stdout
        assert "ERROR" not in proc.stderr


# ----------------------------------------------------------------------------- QGIS


@pytest.mark.skipif(not qgis_available(), reason="QGIS (Debian's python3-qgis) is not importable")
def test_outputs_and_project_in_headless_qgis(outputs: dict[str, Path]) -> None:
    o = outputs
    layers = SceneLayers(o["scene"], o["prob"], o["footprints"], o["objects"], o["plan"])
    project = write_project(o["out"] / "tiny.qgz", layers)
    png = o["out"] / "render.png"
    cmd = [
        str(SYSTEM_PYTHON),
        str(CHECK),
        str(project),
        "--png",
        str(png),
        "--width",
        "335",
        "--layer",
        f"prob={o['prob']}",
        "--layer",
        f"buildings={o['footprints']}|layername=buildings",
        "--layer",
        f"objects={o['objects']}|layername=objects",
    ]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(proc.stdout)
    with rasterio.open(o["scene"]) as src:
        bounds = list(src.bounds)
    assert rep["read"] is True
    assert rep["crs"] == "EPSG:32636"
    assert rep["order"] == [
        "Evaluated footprints (TP / FP / FN)",
        "Building footprints",
        "Tile plan",
        "Building probability",
        "tiny",
    ]
    by_name = {lyr["name"]: lyr for lyr in rep["layers"]}
    for lyr in rep["layers"]:
        assert lyr["valid"], lyr
        assert lyr["crs"] == "EPSG:32636"
        assert lyr["abstract"]
    for name in ("tiny", "Building probability"):
        np.testing.assert_allclose(by_name[name]["extent"], bounds, atol=1e-6)
    fp = by_name["Building footprints"]
    assert (fp["renderer"], fp["field"], fp["features"]) == ("graduatedSymbol", "confidence", 4)
    obj = by_name["Evaluated footprints (TP / FP / FN)"]
    assert (obj["renderer"], obj["field"], obj["classes"]) == ("categorizedSymbol", "status", 3)
    assert by_name["Building probability"]["renderer"] == "singlebandpseudocolor"
    assert by_name["tiny"]["renderer"] == "multibandcolor"
    # dragged in on their own, the files style themselves
    solo = rep["standalone"]
    assert solo["prob"]["renderer"] == "singlebandpseudocolor"
    assert solo["prob"]["ramp"][0] == [0.0, 0] and solo["prob"]["ramp"][-1][0] == 255.0
    assert "value / 255" in solo["prob"]["abstract"]
    assert (solo["buildings"]["renderer"], solo["buildings"]["field"]) == (
        "graduatedSymbol",
        "confidence",
    )
    assert solo["buildings"]["features"] == 4
    assert "square metres" in solo["buildings"]["abstract"]  # from gpkg_contents.description
    assert (solo["objects"]["renderer"], solo["objects"]["field"]) == (
        "categorizedSymbol",
        "status",
    )
    assert rep["png"] and not rep["render_errors"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(png) as img:
            pixels = img.read()
    assert img.width == 335 and pixels.std() > 5  # something was drawn


# ----------------------------------------------------------------------------- CLI


def test_predict_qgis_project_cli(make_scene: MakeScene, tiny_model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from geounet.cli import app

    scene = make_scene(alpha=np.full((45, 67), 255), name="cli.tif")
    out = tmp_path / "out"
    args = ["predict", str(scene), "-m", str(tiny_model), "-o", str(out), "--tile", "64", "-q"]
    result = CliRunner().invoke(app, [*args, "--qgis-project"])
    assert result.exit_code == 0, result.output
    assert "cli.qgz" in result.output
    assert (out / "cli.prob.qml").is_file()
    root = _read_qgz(out / "cli.qgz")
    sources = [el.text for el in root.iter("datasource")]
    assert sources == ["./cli.buildings.gpkg|layername=buildings", "./cli.prob.tif", "../cli.tif"]
    again = CliRunner().invoke(app, [*args, "--qgis-project"])
    assert again.exit_code != 0 and "--overwrite" in again.output
    assert CliRunner().invoke(app, [*args, "--qgis-project", "--overwrite"]).exit_code == 0
