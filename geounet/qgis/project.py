"""Write a QGIS project (``.qgz`` or ``.qgs``) that opens geounet's outputs as a finished map.

The project XML is written from Python (no QGIS needed): each layer is referenced by a
path relative to the project file (``./x.prob.tif``, ``../sample_data/scene.tif``), so the
folder can be moved or shared as a whole; the project CRS and extent are the (first)
scene's. Layers, from top to bottom: evaluated footprints (TP / FP / FN), predicted
footprints, tile plan, probability raster, scene. Each carries its geounet style
(:mod:`geounet.io.styles`) and a metadata abstract that states its units.

Use :func:`write_project` with one :class:`SceneLayers` per scene (several scenes become one
layer group each).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import warnings
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
from pyproj import CRS as ProjCRS
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.errors import RasterioError

from geounet.errors import InputError
from geounet.io.atomic import atomic_path
from geounet.io.layers import CONFLATION as CONFLATION_LAYER
from geounet.io.qml import (
    CONFLATION_ABSTRACT,
    CONFLATION_CLASSES,
    FOOTPRINTS_ABSTRACT,
    FOOTPRINTS_LAYER,
    OBJECTS_ABSTRACT,
    OBJECTS_LAYER,
    QGIS_VERSION,
    TILES_ABSTRACT,
    TILES_LAYER,
    finish_pipe,
    footprints_renderer,
    layer_metadata,
    objects_renderer,
    probability_abstract,
    probability_pipe,
    raster_pipe,
    raster_renderer,
    tiles_renderer,
    to_xml,
)
from geounet.io.remote import gdal_path, is_local, source_stem


@dataclass(frozen=True)
class SceneLayers:
    """The files of one scene to show; every output is optional.

    Attributes:
        scene: The scene raster that was predicted (drawn at the bottom): a file, or a
            URL / GDAL path that QGIS reads where it is.
        probability: ``<stem>.prob.tif`` of ``geounet predict``.
        footprints: ``<stem>.buildings.gpkg`` of ``geounet predict`` (layer ``buildings``).
        objects: ``objects.gpkg`` of ``geounet evaluate`` (layer ``objects``, TP / FP / FN).
        tile_plan: Tile plan GeoPackage of ``geounet plan`` (layer ``tiles``).
        conflation: ``<stem>.conflation.gpkg`` of ``geounet conflate`` (layer
            ``conflation``: new / match / conflict / missing).
        name: The scene's layer group in a project of several scenes (e.g. its catalogue
            id); default: the scene file's stem.
    """

    scene: Path | str
    probability: Path | None = None
    footprints: Path | None = None
    objects: Path | None = None
    tile_plan: Path | None = None
    conflation: Path | None = None
    name: str | None = None


@dataclass(frozen=True)
class _Layer:
    id: str
    name: str
    kind: str  # "raster" or "vector"
    provider: str  # "gdal" or "ogr"
    source: str  # relative to the project
    crs: CRS
    body: list[ET.Element]
    geometry: str = ""
    wkb_type: str = ""


def project_path(out_dir: str | os.PathLike[str], scene: str | os.PathLike[str]) -> Path:
    """Where ``geounet predict --qgis-project`` writes the project: ``<out_dir>/<stem>.qgz``."""
    return Path(out_dir) / f"{Path(scene).stem}.qgz"


def write_project(
    path: str | os.PathLike[str],
    scenes: SceneLayers | Sequence[SceneLayers],
    *,
    title: str | None = None,
) -> Path:
    """Write a QGIS project showing one or more scenes and their outputs.

    ``.qgz`` writes the zipped project QGIS saves by default, ``.qgs`` the plain XML.
    The file is written under a temporary name and renamed into place.

    Args:
        path: The project file (``.qgz`` or ``.qgs``); paths inside are relative to it.
        scenes: The layers of each scene.
        title: The project title (default: the file's stem).

    Returns:
        ``path``.

    Raises:
        InputError: If a file is missing or unreadable, or the suffix is not .qgz / .qgs.
        OutputError: If the project cannot be written.
    """
    out = Path(path)
    if out.suffix.lower() not in (".qgz", ".qgs"):
        raise InputError(f"QGIS project {out} must end in .qgz or .qgs")
    text = project_xml(out, scenes, title=title)
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".qgz":
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(f"{out.stem}.qgs", text)
        else:
            tmp.write_text(text, encoding="utf-8")
    return out


def project_xml(
    path: str | os.PathLike[str],
    scenes: SceneLayers | Sequence[SceneLayers],
    *,
    title: str | None = None,
) -> str:
    """The ``.qgs`` XML of :func:`write_project` (paths relative to ``path``'s folder).

    Raises:
        InputError: If no scene is given or a file is missing or unreadable.
    """
    out = Path(path)
    items = [scenes] if isinstance(scenes, SceneLayers) else list(scenes)
    if not items:
        raise InputError("a QGIS project needs at least one scene")
    home = out.parent.resolve()
    groups = [(s.name or source_stem(s.scene), _scene_layers(s, home)) for s in items]
    first = groups[0][1][-1]  # the first scene's raster layer
    with rasterio.open(_readable(items[0].scene)) as src:
        left, bottom, right, top = src.bounds

    root = ET.Element(
        "qgis",
        projectname=title or out.stem,
        version=QGIS_VERSION,
        saveDateTime=_dt.datetime.now().replace(microsecond=0).isoformat(),
        saveUser="",
        saveUserFull="",
    )
    ET.SubElement(root, "homePath", path="")
    ET.SubElement(root, "title").text = title or out.stem
    ET.SubElement(root, "autotransaction", active="0")
    ET.SubElement(root, "evaluateDefaultValues", active="0")
    ET.SubElement(root, "trust", active="0")
    ET.SubElement(root, "projectFlags", set="")
    ET.SubElement(root, "projectCrs").append(spatial_ref_sys(first.crs))

    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    all_layers: list[_Layer] = []
    for name, layers in groups:
        parent = tree
        if len(groups) > 1:
            parent = ET.SubElement(tree, "layer-tree-group", name=name, checked="Qt::Checked")
            parent.set("expanded", "1")
            ET.SubElement(parent, "customproperties")
        for lyr in layers:
            node = ET.SubElement(
                parent,
                "layer-tree-layer",
                id=lyr.id,
                name=lyr.name,
                source=lyr.source,
                providerKey=lyr.provider,
                checked="Qt::Checked",
                expanded="1",
                legend_exp="",
            )
            ET.SubElement(node, "customproperties")
        all_layers.extend(layers)
    order = ET.SubElement(tree, "custom-order", enabled="0")
    for lyr in all_layers:
        ET.SubElement(order, "item").text = lyr.id

    canvas = ET.SubElement(root, "mapcanvas", name="theMapCanvas", annotationsVisible="1")
    ET.SubElement(canvas, "units").text = _map_units(first.crs)
    ET.SubElement(canvas, "extent").extend(_extent(left, bottom, right, top))
    ET.SubElement(canvas, "rotation").text = "0"
    ET.SubElement(canvas, "destinationsrs").append(spatial_ref_sys(first.crs))
    ET.SubElement(canvas, "rendermaptile").text = "0"

    project_layers = ET.SubElement(root, "projectlayers")
    for lyr in all_layers:
        project_layers.append(_maplayer(lyr))
    layer_order = ET.SubElement(root, "layerorder")
    for lyr in all_layers:
        ET.SubElement(layer_order, "layer", id=lyr.id)

    props = ET.SubElement(root, "properties")
    srs = ET.SubElement(props, "SpatialRefSys")
    ET.SubElement(srs, "ProjectionsEnabled", type="int").text = "1"
    ET.SubElement(srs, "ProjectCrs", type="QString").text = _authid(first.crs)
    paths = ET.SubElement(props, "Paths")
    ET.SubElement(paths, "Absolute", type="bool").text = "false"
    meas = ET.SubElement(props, "Measurement")
    ET.SubElement(meas, "DistanceUnits", type="QString").text = "meters"
    ET.SubElement(meas, "AreaUnits", type="QString").text = "m2"
    return to_xml(root)


# ----------------------------------------------------------------------------- layers


def _scene_layers(s: SceneLayers, home: Path) -> list[_Layer]:
    """The layers of one scene, top (drawn last) to bottom."""
    scene = _raster_info(s.scene, "scene")
    stem = source_stem(s.scene)
    layers: list[_Layer] = []
    if s.conflation is not None:
        layers.append(
            _vector(
                s.conflation,
                CONFLATION_LAYER,
                "Conflation with mapped buildings",
                CONFLATION_ABSTRACT,
                objects_renderer(CONFLATION_CLASSES),
                home,
            )
        )
    if s.objects is not None:
        layers.append(
            _vector(
                s.objects,
                OBJECTS_LAYER,
                "Evaluated footprints (TP / FP / FN)",
                OBJECTS_ABSTRACT,
                objects_renderer(),
                home,
            )
        )
    if s.footprints is not None:
        layers.append(
            _vector(
                s.footprints,
                FOOTPRINTS_LAYER,
                "Building footprints",
                FOOTPRINTS_ABSTRACT,
                footprints_renderer(),
                home,
            )
        )
    if s.tile_plan is not None:
        layers.append(
            _vector(s.tile_plan, TILES_LAYER, "Tile plan", TILES_ABSTRACT, tiles_renderer(), home)
        )
    if s.probability is not None:
        prob = _raster_info(s.probability, "probability raster")
        abstract = probability_abstract(prob.dtype)
        layers.append(
            _Layer(
                id=_layer_id("probability", s.probability),
                name="Building probability",
                kind="raster",
                provider="gdal",
                source=relative_source(s.probability, home),
                crs=prob.crs,
                body=[
                    _metadata(s.probability.stem, "Building probability", abstract, prob.crs),
                    probability_pipe(prob.dtype),
                ],
            )
        )
    layers.append(
        _Layer(
            id=_layer_id("scene", s.scene, s.name),
            name=stem,
            kind="raster",
            provider="gdal",
            source=relative_source(s.scene, home) if is_local(s.scene) else gdal_path(s.scene),
            crs=scene.crs,
            body=[
                _metadata(stem, stem, "The scene that was predicted.", scene.crs),
                scene_pipe(s.scene),
            ],
        )
    )
    return layers


@dataclass(frozen=True)
class _RasterInfo:
    crs: CRS
    dtype: str


def _raster_info(path: Path | str, what: str) -> _RasterInfo:
    if is_local(path) and not Path(path).is_file():
        raise InputError(f"{what} not found: {path}")
    try:
        with rasterio.open(_readable(path)) as src:
            crs, dtype = src.crs, src.dtypes[0]
    except RasterioError as exc:
        raise InputError(f"cannot read {what} {path}: {exc}") from exc
    if crs is None:
        raise InputError(f"{what} {path} has no CRS; assign one (gdal_edit.py -a_srs EPSG:...)")
    return _RasterInfo(crs, str(dtype))


def _vector(
    path: Path, layer: str, name: str, abstract: str, renderer: ET.Element, home: Path
) -> _Layer:
    if not path.is_file():
        raise InputError(f"vector file not found: {path}")
    try:
        info = pyogrio.read_info(path, layer=layer)
    except Exception as exc:  # pyogrio raises DataSourceError / DataLayerError and others
        raise InputError(f"cannot read layer {layer!r} of {path}: {exc}") from exc
    crs = CRS.from_user_input(info["crs"]) if info.get("crs") else None
    if crs is None:
        raise InputError(f"layer {layer!r} of {path} has no CRS")
    wkb = str(info.get("geometry_type") or "Polygon").replace(" ", "")
    meta = _metadata(f"{path.stem}.{layer}", name, abstract, crs)
    return _Layer(
        id=_layer_id(layer, path),
        name=name,
        kind="vector",
        provider="ogr",
        source=f"{relative_source(path, home)}|layername={layer}",
        crs=crs,
        body=[meta, renderer],
        geometry="Polygon",
        wkb_type=wkb,
    )


def _maplayer(lyr: _Layer) -> ET.Element:
    el = ET.Element(
        "maplayer",
        type=lyr.kind,
        autoRefreshEnabled="0",
        autoRefreshTime="0",
        refreshOnNotifyEnabled="0",
        hasScaleBasedVisibilityFlag="0",
        styleCategories="AllStyleCategories",
        minScale="1e+08",
        maxScale="0",
    )
    if lyr.kind == "vector":
        el.set("geometry", lyr.geometry)
        el.set("wkbType", lyr.wkb_type)
    ET.SubElement(el, "id").text = lyr.id
    ET.SubElement(el, "datasource").text = lyr.source
    ET.SubElement(el, "layername").text = lyr.name
    ET.SubElement(el, "srs").append(spatial_ref_sys(lyr.crs))
    if lyr.kind == "vector":
        ET.SubElement(el, "provider", encoding="UTF-8").text = lyr.provider
    else:
        ET.SubElement(el, "provider").text = lyr.provider
    el.extend(lyr.body)
    ET.SubElement(el, "blendMode").text = "0"
    if lyr.kind == "vector":
        ET.SubElement(el, "featureBlendMode").text = "0"
        ET.SubElement(el, "layerOpacity").text = "1"
    return el


def _metadata(identifier: str, title: str, abstract: str, crs: CRS) -> ET.Element:
    meta = ET.Element("resourceMetadata")
    meta.extend(layer_metadata(identifier, title, abstract))
    ET.SubElement(meta, "crs").append(spatial_ref_sys(crs))
    return meta


def _layer_id(kind: str, path: Path | str, group: str | None = None) -> str:
    """A stable layer id: the kind and a short hash of the file's absolute path (or URL).

    ``group`` (a scene's group name) keeps the ids apart when two groups show one file.
    """
    where = str(Path(path).resolve()) if is_local(path) else str(path)
    key = where if group is None else f"{group}\n{where}"
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()
    return f"{kind}_{digest[:12]}"


def relative_source(path: str | os.PathLike[str], home: str | os.PathLike[str]) -> str:
    """A data source path relative to the project folder, in QGIS's form (``./`` or ``../``).

    Args:
        path: The file.
        home: The project's folder.
    """
    rel = Path(os.path.relpath(Path(path).resolve(), Path(home).resolve())).as_posix()
    return rel if rel.startswith("../") else f"./{rel}"


def _readable(path: Path | str) -> Path | str:
    """What rasterio opens for a file, URL or GDAL path (``Path`` would fold a URL's //)."""
    return Path(path) if is_local(path) else gdal_path(path)


def scene_pipe(scene: Path | str) -> ET.Element:
    """A raster pipe that draws the scene as an image: RGB (+ alpha) or grey.

    8-bit scenes are drawn as they are; others are stretched between their 2nd and 98th
    percentiles (estimated on a decimated read).
    """
    with rasterio.open(_readable(scene)) as src:
        interp = list(src.colorinterp)
        dtype = src.dtypes[0]
        data_bands = [i + 1 for i, c in enumerate(interp) if c != ColorInterp.alpha]
        alpha = next((i + 1 for i, c in enumerate(interp) if c == ColorInterp.alpha), -1)
        rgb = data_bands[:3] if len(data_bands) >= 3 else data_bands[:1]
        ranges: dict[int, tuple[float, float]] = {}
        for b in rgb:
            if dtype == "uint8":
                ranges[b] = (0.0, 255.0)
            else:
                scale = max(1, max(src.width, src.height) // 512)
                arr = src.read(
                    b,
                    out_shape=(max(1, src.height // scale), max(1, src.width // scale)),
                    masked=True,
                )
                vals = arr.compressed() if np.ma.isMaskedArray(arr) else arr.ravel()
                vals = vals[np.isfinite(vals)]
                lo, hi = np.percentile(vals, [2, 98]) if vals.size else (0.0, 1.0)
                ranges[b] = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
    pipe = raster_pipe()
    algorithm = "NoEnhancement" if dtype == "uint8" else "StretchToMinimumMaximum"
    if len(rgb) == 3:
        rr = raster_renderer(
            pipe,
            type="multibandcolor",
            opacity="1",
            alphaBand=str(alpha),
            redBand=str(rgb[0]),
            greenBand=str(rgb[1]),
            blueBand=str(rgb[2]),
            nodataColor="",
        )
        for colour, b in zip(("red", "green", "blue"), rgb, strict=True):
            _contrast(rr, f"{colour}ContrastEnhancement", *ranges[b], algorithm)
    else:
        rr = raster_renderer(
            pipe,
            type="singlebandgray",
            opacity="1",
            alphaBand=str(alpha),
            grayBand=str(rgb[0]),
            gradient="BlackToWhite",
            nodataColor="",
        )
        _contrast(rr, "contrastEnhancement", *ranges[rgb[0]], algorithm)
    finish_pipe(pipe)
    return pipe


def _contrast(parent: ET.Element, tag: str, lo: float, hi: float, algorithm: str) -> None:
    ce = ET.SubElement(parent, tag)
    ET.SubElement(ce, "minValue").text = f"{lo:g}"
    ET.SubElement(ce, "maxValue").text = f"{hi:g}"
    ET.SubElement(ce, "algorithm").text = algorithm


# ----------------------------------------------------------------------------- CRS


def spatial_ref_sys(crs: CRS) -> ET.Element:
    """QGIS's ``<spatialrefsys>`` of a CRS (WKT2, PROJ string and authority code)."""
    pcrs = ProjCRS.from_user_input(crs.to_wkt())
    auth = pcrs.to_authority()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "you will likely lose information"
        proj4 = pcrs.to_proj4() or ""
    ellipsoid = _ellipsoid_id(pcrs)
    el = ET.Element("spatialrefsys", nativeFormat="Wkt")
    ET.SubElement(el, "wkt").text = pcrs.to_wkt("WKT2_2019")
    ET.SubElement(el, "proj4").text = proj4
    ET.SubElement(el, "srsid").text = "0"
    ET.SubElement(el, "srid").text = auth[1] if auth else "0"
    ET.SubElement(el, "authid").text = f"{auth[0]}:{auth[1]}" if auth else ""
    ET.SubElement(el, "description").text = pcrs.name
    ET.SubElement(el, "projectionacronym").text = _proj_param(proj4, "proj")
    ET.SubElement(el, "ellipsoidacronym").text = ":".join(ellipsoid) if ellipsoid else ""
    ET.SubElement(el, "geographicflag").text = "true" if pcrs.is_geographic else "false"
    return el


def _ellipsoid_id(pcrs: ProjCRS) -> tuple[str, str] | None:
    """The ellipsoid's authority code (``("EPSG", "7030")``), as QGIS names ellipsoids."""
    if pcrs.ellipsoid is None:
        return None
    ids = pcrs.ellipsoid.to_json_dict().get("id")
    return (str(ids["authority"]), str(ids["code"])) if ids else None


def _authid(crs: CRS) -> str:
    auth = ProjCRS.from_user_input(crs.to_wkt()).to_authority()
    return f"{auth[0]}:{auth[1]}" if auth else ""


def _proj_param(proj4: str, key: str) -> str:
    for token in proj4.split():
        if token.startswith(f"+{key}="):
            return token.split("=", 1)[1]
    return ""


def _map_units(crs: CRS) -> str:
    return "degrees" if crs.is_geographic else "meters"


def _extent(left: float, bottom: float, right: float, top: float) -> list[ET.Element]:
    out = []
    for tag, value in (("xmin", left), ("ymin", bottom), ("xmax", right), ("ymax", top)):
        el = ET.Element(tag)
        el.text = repr(float(value))
        out.append(el)
    return out
