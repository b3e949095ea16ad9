"""QGIS styles as XML: renderers, raster pipes, layer metadata and ``.qml`` documents.

QGIS 3.22 format, read by later versions too; the same elements serve the ``.qml``
files, the GeoPackage ``layer_styles`` rows (:mod:`geounet.io.styles`) and the layers of
a project file (:mod:`geounet.qgis.project`). No QGIS is needed to build them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from geounet.io import layers

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


CONFLATION_CLASSES: tuple[Band, ...] = (
    Band("new", 0.0, "#009E73", "new: predicted, not in the existing layer"),
    Band("match", 0.0, "#999999", "match: predicted and already mapped"),
    Band("conflict", 0.0, "#E69F00", "conflict: predicted, overlaps a mapped one unmatched"),
    Band("missing", 0.0, "#0072B2", "missing: mapped, not predicted"),
)
"""Categories of the conflation layer's style on ``status``."""


CONFLATION_ABSTRACT = (
    "Predicted footprints compared with an existing building layer (geounet conflate), in "
    "the predictions' CRS. Fields: status (new = predicted, overlapping no existing "
    "building; match = matched one to one to an existing building at IoU >= the rule's; "
    "conflict = overlaps an existing building without matching it; missing = an existing "
    "building that no prediction matched); origin (predicted or existing); iou (of the "
    "match, or the best overlap with the other layer, 0 to 1); area_m2 (ground area in "
    "square metres, local UTM zone). Style: outlines in four colours by status."
)


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
    """Categorised renderer on ``status``: TP / FP / FN outlines (or ``classes``) in colours."""
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


def conflation_qml() -> str:
    """The conflation layer's style as a ``.qml`` document."""
    return qml([objects_renderer(CONFLATION_CLASSES)])


def tiles_qml() -> str:
    """The tile plan's style as a ``.qml`` document."""
    return qml([tiles_renderer()])


def probability_qml(dtype: str) -> str:
    """The probability raster's style as a ``.qml`` document."""
    return qml([probability_pipe(dtype)], raster=True)
