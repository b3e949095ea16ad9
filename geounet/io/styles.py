"""Default QGIS styles that travel with geounet's outputs, and the layer descriptions.

QGIS applies a style without any user action when it is

- a row of the GeoPackage table ``layer_styles`` (QGIS's own convention) with
  ``useAsDefault`` set, for a GeoPackage layer (:func:`write_layer_style`);
- a ``.qml`` file beside a raster with the raster's name (``x.prob.tif`` -> ``x.prob.qml``,
  :func:`write_probability_style`).

The styles are built here as XML elements (QGIS 3.22 format, read by later versions too),
so the same elements serve the ``.qml`` files, the ``layer_styles`` rows and the layers of
a project file (:mod:`geounet.qgis.project`). No QGIS is needed to write them.

Styles:

- footprints (``buildings`` layer): outlines only, graduated by ``confidence`` in
  :data:`CONFIDENCE_CLASSES`;
- evaluated objects (``objects`` layer): outlines categorised by ``status`` TP / FP / FN in
  the Okabe-Ito colours of the report's figures;
- tile plan (``tiles`` layer): a thin grey grid;
- probability raster: a colour ramp that is transparent below probability 0.2 and more
  opaque as the probability rises; no-data pixels (the raster's mask) are transparent.
"""

from __future__ import annotations

import datetime as _dt
import os
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import rasterio

from geounet.errors import OutputError
from geounet.io import layers
from geounet.io.atomic import write_text

QGIS_VERSION = "3.22.16-Białowieża"
"""QGIS version written into styles and projects (the oldest one they were checked with)."""

DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>"

FOOTPRINTS_LAYER = layers.FOOTPRINTS
OBJECTS_LAYER = layers.OBJECTS
TILES_LAYER = layers.TILES

CONFIDENCE_FIELD = "confidence"
STATUS_FIELD = "status"


@dataclass(frozen=True)
class Band:
    """One class of a graduated or categorised style.

    Attributes:
        lower: Lower bound (graduated) or the category value as text (categorised).
        upper: Upper bound (graduated; unused when categorised).
        colour: Outline colour, ``#rrggbb``.
        label: Legend label.
    """

    lower: float | str
    upper: float
    colour: str
    label: str


CONFIDENCE_CLASSES: tuple[Band, ...] = (
    Band(0.0, 0.5, "#ff7f00", "below 0.50"),
    Band(0.5, 0.65, "#ffd92f", "0.50 - 0.65"),
    Band(0.65, 0.8, "#a6e22e", "0.65 - 0.80"),
    Band(0.8, 0.9, "#2fe0ff", "0.80 - 0.90"),
    Band(0.9, 1.0, "#1f78ff", "0.90 - 1.00"),
)
"""Classes of the footprint style on ``confidence`` (mean probability inside, 0..1)."""

STATUS_CLASSES: tuple[Band, ...] = (
    Band("TP", 0.0, "#009E73", "TP: predicted and true (matched)"),
    Band("FP", 0.0, "#D55E00", "FP: predicted, not true"),
    Band("FN", 0.0, "#0072B2", "FN: true, missed"),
)
"""Categories of the evaluated objects' style on ``status`` (colours of the report)."""

PROBABILITY_RAMP: tuple[tuple[float, str, int], ...] = (
    (0.0, "#fff5eb", 0),
    (0.2, "#fdd0a2", 0),
    (0.35, "#fd8d3c", 70),
    (0.5, "#f03b20", 120),
    (0.75, "#c2185b", 150),
    (1.0, "#7a0177", 180),
)
"""Probability colour ramp: ``(probability, colour, alpha 0..255)``, interpolated."""

PROBABILITY_OPACITY = 0.8
"""Opacity of the probability layer as a whole (QGIS's layer opacity)."""

FOOTPRINTS_ABSTRACT = (
    "Building footprints predicted by geounet, in the scene's CRS. Fields: id (feature "
    "number); area_m2 (ground area in square metres, measured in the local UTM zone); "
    "confidence (mean building probability inside the footprint, 0 to 1, no unit). "
    "Style: outlines coloured by confidence."
)
OBJECTS_ABSTRACT = (
    "Footprints of an object-level evaluation (SpaceNet rule), in the scene's CRS. Fields: "
    "status (TP = predicted footprint matched to a true one, FP = predicted, no match, FN = "
    "true footprint missed); iou (intersection over union, 0 to 1: of the match for TP, "
    "the best overlap with the other side for FP and FN, 0 when none); area_m2 (ground "
    "area in square metres, local UTM zone). Style: outlines in three colours by status."
)
TILES_ABSTRACT = (
    "Tile plan of the working grid: one polygon per model tile (windows in pixels, "
    "possibly reaching into the mirrored border)."
)


def probability_abstract(dtype: str) -> str:
    """Units note of a probability raster of ``dtype`` (``uint8`` or ``float32``)."""
    scale = "probability = value / 255" if dtype == "uint8" else "value = probability (0 to 1)"
    return (
        f"Building probability per pixel predicted by geounet ({dtype}: {scale}); masked "
        "pixels are no data. Style: transparent below 0.2, then yellow to purple and more "
        "opaque as the probability rises."
    )


# ----------------------------------------------------------------------------- XML helpers


def _rgba(colour: str, alpha: int = 255) -> str:
    """``#rrggbb`` -> QGIS's ``r,g,b,a``."""
    c = colour.lstrip("#")
    return f"{int(c[0:2], 16)},{int(c[2:4], 16)},{int(c[4:6], 16)},{alpha}"


def _options(values: Mapping[str, str]) -> ET.Element:
    """A QGIS ``<Option type="Map">`` of string properties."""
    root = ET.Element("Option", type="Map")
    for key, value in sorted(values.items()):
        ET.SubElement(root, "Option", name=key, type="QString", value=value)
    return root


def outline_symbol(
    name: str, colour: str, width_mm: float = 0.6, fill_alpha: int = 0
) -> ET.Element:
    """A fill symbol drawing only an outline (optionally a faint fill of the same colour).

    Args:
        name: The symbol's key in its renderer.
        colour: Outline colour, ``#rrggbb``.
        width_mm: Outline width in millimetres on the map.
        fill_alpha: Alpha of the fill (0 = no fill).
    """
    sym = ET.Element(
        "symbol",
        type="fill",
        name=name,
        alpha="1",
        clip_to_extent="1",
        force_rhr="0",
        is_animated="0",
        frame_rate="10",
    )
    layer = ET.SubElement(
        sym, "layer", {"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"}
    )
    layer.append(
        _options(
            {
                "border_width_map_unit_scale": "3x:0,0,0,0,0,0",
                "color": _rgba(colour, fill_alpha),
                "joinstyle": "miter",
                "offset": "0,0",
                "offset_map_unit_scale": "3x:0,0,0,0,0,0",
                "offset_unit": "MM",
                "outline_color": _rgba(colour),
                "outline_style": "solid",
                "outline_width": f"{width_mm:g}",
                "outline_width_unit": "MM",
                "style": "solid" if fill_alpha else "no",
            }
        )
    )
    return sym


def _renderer(kind: str, **attrs: str) -> ET.Element:
    attrib = {
        "type": kind,
        "symbollevels": "0",
        "enableorderby": "0",
        "forceraster": "0",
        "referencescale": "-1",
    }
    attrib.update(attrs)
    return ET.Element("renderer-v2", attrib)


def footprints_renderer(classes: Sequence[Band] = CONFIDENCE_CLASSES) -> ET.Element:
    """Graduated renderer on ``confidence``: outlines coloured by class."""
    r = _renderer("graduatedSymbol", attr=CONFIDENCE_FIELD, graduatedMethod="GraduatedColor")
    ranges = ET.SubElement(r, "ranges")
    symbols = ET.SubElement(r, "symbols")
    for i, band in enumerate(classes):
        ET.SubElement(
            ranges,
            "range",
            lower=f"{float(band.lower):.6f}",
            upper=f"{band.upper:.6f}",
            symbol=str(i),
            label=band.label,
            render="true",
            uuid=f"confidence-{i}",
        )
        symbols.append(outline_symbol(str(i), band.colour))
    ET.SubElement(r, "source-symbol").append(outline_symbol("0", classes[-1].colour))
    method = ET.SubElement(r, "classificationMethod", id="Custom")
    ET.SubElement(method, "symmetricMode", enabled="0", symmetrypoint="0", astride="0")
    ET.SubElement(
        method, "labelFormat", format="%1 - %2", labelprecision="2", trimtrailingzeroes="0"
    )
    return r


def objects_renderer(classes: Sequence[Band] = STATUS_CLASSES) -> ET.Element:
    """Categorised renderer on ``status``: TP / FP / FN outlines in three colours."""
    r = _renderer("categorizedSymbol", attr=STATUS_FIELD)
    cats = ET.SubElement(r, "categories")
    symbols = ET.SubElement(r, "symbols")
    for i, band in enumerate(classes):
        ET.SubElement(
            cats,
            "category",
            value=str(band.lower),
            symbol=str(i),
            label=band.label,
            render="true",
            uuid=f"status-{band.lower}",
        )
        symbols.append(outline_symbol(str(i), band.colour, width_mm=0.7, fill_alpha=40))
    ET.SubElement(r, "source-symbol").append(outline_symbol("0", "#888888"))
    return r


def tiles_renderer() -> ET.Element:
    """Single-symbol renderer: a thin grey grid of tile outlines."""
    r = _renderer("singleSymbol")
    ET.SubElement(r, "symbols").append(outline_symbol("0", "#606060", width_mm=0.3))
    return r


def min_max_origin(renderer: ET.Element) -> None:
    """Add QGIS's default ``minMaxOrigin`` block (fixed limits) to a raster renderer."""
    mmo = ET.SubElement(renderer, "minMaxOrigin")
    for tag, text in (
        ("limits", "None"),
        ("extent", "WholeRaster"),
        ("statAccuracy", "Estimated"),
        ("cumulativeCutLower", "0.02"),
        ("cumulativeCutUpper", "0.98"),
        ("stdDevFactor", "2"),
    ):
        ET.SubElement(mmo, tag).text = text


def probability_pipe(dtype: str) -> ET.Element:
    """The raster pipe of a probability raster: a transparent pseudocolour ramp.

    Args:
        dtype: ``uint8`` (value = probability * 255) or ``float32`` (value = probability).
    """
    top = 255.0 if dtype == "uint8" else 1.0
    pipe = raster_pipe()
    rr = raster_renderer(
        pipe,
        type="singlebandpseudocolor",
        band="1",
        opacity=f"{PROBABILITY_OPACITY:g}",
        alphaBand="-1",
        classificationMin="0",
        classificationMax=f"{top:g}",
        nodataColor="",
    )
    shader = ET.SubElement(ET.SubElement(rr, "rastershader"), "colorrampshader")
    shader.attrib.update(
        colorRampType="INTERPOLATED",
        classificationMode="1",
        clip="0",
        minimumValue="0",
        maximumValue=f"{top:g}",
        labelPrecision="2",
    )
    for p, colour, alpha in PROBABILITY_RAMP:
        ET.SubElement(
            shader, "item", value=f"{p * top:g}", color=colour, alpha=str(alpha), label=f"{p:.2f}"
        )
    finish_pipe(pipe, hue_saturation=True)
    return pipe


def raster_pipe() -> ET.Element:
    """A QGIS raster ``pipe`` with its provider (nearest-neighbour resampling), empty."""
    pipe = ET.Element("pipe")
    provider = ET.SubElement(pipe, "provider")
    ET.SubElement(
        provider,
        "resampling",
        enabled="false",
        maxOversampling="2",
        zoomedInResamplingMethod="nearestNeighbour",
        zoomedOutResamplingMethod="nearestNeighbour",
    )
    return pipe


def raster_renderer(pipe: ET.Element, **attributes: str) -> ET.Element:
    """The pipe's ``rasterrenderer`` with these attributes, transparency and min/max origin."""
    renderer = ET.SubElement(pipe, "rasterrenderer", dict(attributes))
    ET.SubElement(renderer, "rasterTransparency")
    min_max_origin(renderer)
    return renderer


def finish_pipe(pipe: ET.Element, hue_saturation: bool = False) -> None:
    """The stages after the renderer: brightness/contrast, (hue/saturation), resampling."""
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    if hue_saturation:
        ET.SubElement(
            pipe,
            "huesaturation",
            saturation="0",
            grayscaleMode="0",
            invertColors="0",
            colorizeOn="0",
            colorizeRed="255",
            colorizeGreen="128",
            colorizeBlue="128",
            colorizeStrength="100",
        )
    ET.SubElement(pipe, "rasterresampler", maxOversample="2")
    ET.SubElement(pipe, "resamplingStage").text = "resamplingFilter"


def layer_metadata(identifier: str, title: str, abstract: str) -> list[ET.Element]:
    """The children of a QGIS layer metadata block (``<resourceMetadata>``, ``.qmd``)."""
    out: list[ET.Element] = []
    for tag, text in (
        ("identifier", identifier),
        ("parentidentifier", ""),
        ("language", ""),
        ("type", "dataset"),
        ("title", title),
        ("abstract", abstract),
    ):
        el = ET.Element(tag)
        el.text = text
        out.append(el)
    out.extend(ET.Element(tag) for tag in ("links", "fees", "encoding"))
    return out


def qml(children: Iterable[ET.Element], *, raster: bool = False) -> str:
    """A complete ``.qml`` style document holding ``children`` (renderer or pipe)."""
    root = ET.Element(
        "qgis",
        version=QGIS_VERSION,
        styleCategories="Symbology" if not raster else "Symbology|Rendering",
        hasScaleBasedVisibilityFlag="0",
        minScale="1e+08",
        maxScale="0",
    )
    root.extend(children)
    if raster:
        ET.SubElement(root, "blendMode").text = "0"
    else:
        ET.SubElement(root, "blendMode").text = "0"
        ET.SubElement(root, "featureBlendMode").text = "0"
        ET.SubElement(root, "layerOpacity").text = "1"
    return to_xml(root)


def to_xml(root: ET.Element) -> str:
    """Serialise a QGIS document: the QGIS doctype, then the indented element."""
    ET.indent(root, space=" ")
    return DOCTYPE + "\n" + ET.tostring(root, encoding="unicode") + "\n"


def footprints_qml() -> str:
    """The footprint style as a ``.qml`` document."""
    return qml([footprints_renderer()])


def objects_qml() -> str:
    """The evaluated objects' style as a ``.qml`` document."""
    return qml([objects_renderer()])


def tiles_qml() -> str:
    """The tile plan's style as a ``.qml`` document."""
    return qml([tiles_renderer()])


def probability_qml(dtype: str) -> str:
    """The probability raster's style as a ``.qml`` document."""
    return qml([probability_pipe(dtype)], raster=True)


# ----------------------------------------------------------------------------- SLD

_SLD_NS = {
    "xmlns": "http://www.opengis.net/sld",
    "xmlns:ogc": "http://www.opengis.net/ogc",
    "xmlns:se": "http://www.opengis.net/se",
    "xmlns:xlink": "http://www.w3.org/1999/xlink",
    "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "version": "1.1.0",
    "xsi:schemaLocation": (
        "http://www.opengis.net/sld http://schemas.opengis.net/sld/1.1.0/StyledLayerDescriptor.xsd"
    ),
}


def _compare(parent: ET.Element, op: str, field: str, value: str) -> None:
    cmp = ET.SubElement(parent, f"ogc:{op}")
    ET.SubElement(cmp, "ogc:PropertyName").text = field
    ET.SubElement(cmp, "ogc:Literal").text = value


def _sld(layer: str, rules: Iterable[tuple[str, str, list[tuple[str, str, str]]]]) -> str:
    """An SLD 1.1 document of outline rules ``(label, colour, [(operator, field, value)])``."""
    root = ET.Element("StyledLayerDescriptor", _SLD_NS)
    named = ET.SubElement(root, "NamedLayer")
    ET.SubElement(named, "se:Name").text = layer
    user = ET.SubElement(named, "UserStyle")
    ET.SubElement(user, "se:Name").text = layer
    fts = ET.SubElement(user, "se:FeatureTypeStyle")
    for label, colour, conds in rules:
        rule = ET.SubElement(fts, "se:Rule")
        ET.SubElement(rule, "se:Name").text = label
        ET.SubElement(ET.SubElement(rule, "se:Description"), "se:Title").text = label
        filt = ET.SubElement(rule, "ogc:Filter")
        target = ET.SubElement(filt, "ogc:And") if len(conds) > 1 else filt
        for op, field, value in conds:
            _compare(target, op, field, value)
        stroke = ET.SubElement(ET.SubElement(rule, "se:PolygonSymbolizer"), "se:Stroke")
        ET.SubElement(stroke, "se:SvgParameter", name="stroke").text = colour
        ET.SubElement(stroke, "se:SvgParameter", name="stroke-width").text = "2"
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def footprints_sld() -> str:
    """The footprint style as SLD 1.1 (for tools other than QGIS)."""
    last = len(CONFIDENCE_CLASSES) - 1
    return _sld(
        FOOTPRINTS_LAYER,
        (
            (
                b.label,
                b.colour,
                [
                    ("PropertyIsGreaterThanOrEqualTo", CONFIDENCE_FIELD, f"{float(b.lower):g}"),
                    (
                        "PropertyIsLessThanOrEqualTo" if i == last else "PropertyIsLessThan",
                        CONFIDENCE_FIELD,
                        f"{b.upper:g}",
                    ),
                ],
            )
            for i, b in enumerate(CONFIDENCE_CLASSES)
        ),
    )


def objects_sld() -> str:
    """The evaluated objects' style as SLD 1.1."""
    return _sld(
        OBJECTS_LAYER,
        (
            (b.label, b.colour, [("PropertyIsEqualTo", STATUS_FIELD, str(b.lower))])
            for b in STATUS_CLASSES
        ),
    )


# ----------------------------------------------------------------------------- GeoPackage

_LAYER_STYLES_DDL = """
CREATE TABLE IF NOT EXISTS layer_styles (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    f_table_catalog TEXT(256),
    f_table_schema TEXT(256),
    f_table_name TEXT(256),
    f_geometry_column TEXT(256),
    styleName TEXT(30),
    styleQML TEXT,
    styleSLD TEXT,
    useAsDefault BOOLEAN,
    description TEXT,
    owner TEXT(30),
    ui TEXT(30),
    update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
)
"""


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_layer_style(
    gpkg: str | os.PathLike[str],
    layer: str,
    qml_text: str,
    sld_text: str = "",
    *,
    name: str = "geounet",
    description: str = "",
) -> None:
    """Store a default QGIS style for ``layer`` in the GeoPackage's ``layer_styles`` table.

    The table is created as QGIS creates it (and registered in ``gpkg_contents`` as an
    attributes table, so GDAL lists it as a plain table); earlier default styles of the
    layer lose their default flag and a style of the same name is replaced.

    Args:
        gpkg: The GeoPackage (written in place: style a temporary file before renaming it).
        layer: The layer (table) the style is for.
        qml_text: The style as a ``.qml`` document.
        sld_text: The style as SLD (optional).
        name: The style's name in QGIS's style manager.
        description: A sentence shown in QGIS's style manager.

    Raises:
        OutputError: If the file is not a GeoPackage holding ``layer``.
    """
    with _connect(gpkg) as con:
        geom = con.execute(
            "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
        ).fetchone()
        if geom is None:
            raise OutputError(f"{gpkg} has no vector layer {layer!r} to style")
        con.execute(_LAYER_STYLES_DDL)
        if (
            con.execute("SELECT 1 FROM gpkg_contents WHERE table_name = 'layer_styles'").fetchone()
            is None
        ):
            con.execute(
                "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, "
                "last_change) VALUES ('layer_styles', 'attributes', 'layer_styles', "
                "'QGIS layer styles', ?)",
                (_now(),),
            )
        con.execute("UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ?", (layer,))
        con.execute(
            "DELETE FROM layer_styles WHERE f_table_name = ? AND styleName = ?", (layer, name)
        )
        con.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
            "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description, "
            "owner, ui, update_time) VALUES ('', '', ?, ?, ?, ?, ?, 1, ?, '', NULL, ?)",
            (layer, geom[0], name, qml_text, sld_text, description, _now()),
        )
        _refresh_feature_count(con, "layer_styles")


def set_layer_description(
    gpkg: str | os.PathLike[str], layer: str, description: str, title: str | None = None
) -> None:
    """Set a layer's description (and title) in ``gpkg_contents``: its units note.

    Raises:
        OutputError: If the file is not a GeoPackage holding ``layer``.
    """
    with _connect(gpkg) as con:
        cur = con.execute(
            "UPDATE gpkg_contents SET description = ?, identifier = COALESCE(?, identifier) "
            "WHERE table_name = ?",
            (description, title, layer),
        )
        if cur.rowcount != 1:
            raise OutputError(f"{gpkg} has no layer {layer!r} to describe")


def style_footprints(gpkg: str | os.PathLike[str], layer: str = FOOTPRINTS_LAYER) -> None:
    """Give a footprint layer its default style and units note (see :func:`write_layer_style`)."""
    set_layer_description(gpkg, layer, FOOTPRINTS_ABSTRACT, "Building footprints")
    write_layer_style(
        gpkg,
        layer,
        footprints_qml(),
        footprints_sld(),
        description="Outlines coloured by confidence (geounet)",
    )


def style_objects(gpkg: str | os.PathLike[str], layer: str = OBJECTS_LAYER) -> None:
    """Give an evaluated objects layer its default style (TP / FP / FN) and units note."""
    set_layer_description(gpkg, layer, OBJECTS_ABSTRACT, "Evaluated footprints (TP/FP/FN)")
    write_layer_style(
        gpkg,
        layer,
        objects_qml(),
        objects_sld(),
        description="TP / FP / FN outlines (geounet evaluate)",
    )


def _refresh_feature_count(con: sqlite3.Connection, table: str) -> None:
    """Keep GDAL's cached feature count (``gpkg_ogr_contents``) right, when it has one."""
    if con.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'gpkg_ogr_contents'"
    ).fetchone():
        n = con.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
        con.execute("DELETE FROM gpkg_ogr_contents WHERE table_name = ?", (table,))
        con.execute(
            "INSERT INTO gpkg_ogr_contents (table_name, feature_count) VALUES (?, ?)",
            (table, n),
        )


class _connect:
    """A sqlite3 connection to a GeoPackage, committed and closed on exit."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def __enter__(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise OutputError(f"GeoPackage {self.path} not found")
        try:
            self.con = sqlite3.connect(self.path)
            self.con.execute("SELECT 1 FROM gpkg_contents LIMIT 1")
        except sqlite3.DatabaseError as exc:
            raise OutputError(f"{self.path} is not a GeoPackage ({exc})") from exc
        return self.con

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.con.commit()
        finally:
            self.con.close()


# ----------------------------------------------------------------------------- rasters


def sidecar_path(raster: str | os.PathLike[str], suffix: str = ".qml") -> Path:
    """The sidecar QGIS loads for a raster: ``x.prob.tif`` -> ``x.prob.qml``."""
    return Path(raster).with_suffix(suffix)


def write_probability_style(prob: str | os.PathLike[str]) -> Path:
    """Write the ``.qml`` (style) and ``.qmd`` (metadata) sidecars of a probability raster.

    QGIS loads both automatically with the raster. Each is written under a temporary name
    and renamed into place.

    Args:
        prob: ``<stem>.prob.tif`` of ``geounet predict`` (uint8 or float32).

    Returns:
        The path of the ``.qml`` file.

    Raises:
        OutputError: If the raster cannot be read or the sidecars cannot be written.
    """
    p = Path(prob)
    try:
        with rasterio.open(p) as src:
            dtype = src.dtypes[0]
    except rasterio.errors.RasterioError as exc:
        raise OutputError(f"cannot read probability raster {p}: {exc}") from exc
    meta = ET.Element("qgis", version=QGIS_VERSION)
    meta.extend(layer_metadata(p.stem, "Building probability", probability_abstract(str(dtype))))
    out = sidecar_path(p)
    write_text(out, probability_qml(str(dtype)))
    write_text(sidecar_path(p, ".qmd"), to_xml(meta))
    return out
