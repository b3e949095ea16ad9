"""SLD versions of the footprint and object styles (the ``styleSLD`` of ``layer_styles``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

from geounet.io.qml import (
    CONFIDENCE_CLASSES,
    CONFIDENCE_FIELD,
    FOOTPRINTS_LAYER,
    OBJECTS_LAYER,
    STATUS_CLASSES,
    STATUS_FIELD,
    Band,
)

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


def objects_sld(layer: str = OBJECTS_LAYER, classes: Sequence[Band] = STATUS_CLASSES) -> str:
    """The evaluated objects' style (or another layer's ``status`` classes) as SLD 1.1."""
    return _sld(
        layer,
        ((b.label, b.colour, [("PropertyIsEqualTo", STATUS_FIELD, str(b.lower))]) for b in classes),
    )
