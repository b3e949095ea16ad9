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
from pathlib import Path

import rasterio

from geounet.errors import OutputError
from geounet.io import layers
from geounet.io.atomic import write_text
from geounet.io.qml import (
    CONFLATION_ABSTRACT,
    CONFLATION_CLASSES,
    FOOTPRINTS_ABSTRACT,
    FOOTPRINTS_LAYER,
    OBJECTS_ABSTRACT,
    OBJECTS_LAYER,
    QGIS_VERSION,
    conflation_qml,
    footprints_qml,
    layer_metadata,
    objects_qml,
    probability_abstract,
    probability_qml,
    to_xml,
)
from geounet.io.sld import (
    footprints_sld,
    objects_sld,
)

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


def style_conflation(gpkg: str | os.PathLike[str], layer: str = layers.CONFLATION) -> None:
    """Give a conflation layer its default style (new / match / conflict / missing)."""
    set_layer_description(gpkg, layer, CONFLATION_ABSTRACT, "Conflation with existing buildings")
    write_layer_style(
        gpkg,
        layer,
        conflation_qml(),
        objects_sld(layer, CONFLATION_CLASSES),
        description="New / match / conflict / missing outlines (geounet conflate)",
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
