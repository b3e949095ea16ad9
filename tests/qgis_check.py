"""Load geounet's outputs and project in headless QGIS; print what QGIS sees as JSON.

Run with the system Python that has Debian's ``python3-qgis`` (not the project's venv)::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_check.py PROJECT [--png OUT.png]
        [--layer KEY=PATH[|layername=NAME] ...]

Each ``--layer`` is also loaded on its own, as a user dragging the file into QGIS would,
so that the default styles (``layer_styles`` rows, ``.qml`` sidecars) are exercised.
``tests/test_qgis.py`` runs this script and checks its report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    Qgis,
    QgsApplication,
    QgsMapLayer,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402


def describe(layer: QgsMapLayer) -> dict[str, Any]:
    """What a test needs to know of a layer: validity, CRS, extent, style, metadata."""
    ext = layer.extent()
    out: dict[str, Any] = {
        "name": layer.name(),
        "valid": layer.isValid(),
        "crs": layer.crs().authid(),
        "extent": [ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum()],
        "abstract": layer.metadata().abstract(),
        "source": layer.source(),
    }
    if isinstance(layer, QgsVectorLayer):
        r = layer.renderer()
        out["features"] = layer.featureCount()
        out["renderer"] = r.type() if r else None
        out["field"] = r.classAttribute() if r and hasattr(r, "classAttribute") else None
        out["classes"] = (
            len(r.ranges()) if hasattr(r, "ranges") else len(getattr(r, "categories", list)())
        )
        out["fields"] = [f.name() for f in layer.fields()]
    elif isinstance(layer, QgsRasterLayer):
        r = layer.renderer()
        out["renderer"] = r.type() if r else None
        out["opacity"] = r.opacity() if r else None
        if r is not None and r.type() == "singlebandpseudocolor":
            shader = r.shader().rasterShaderFunction()
            items = shader.colorRampItemList()
            out["ramp"] = [[i.value, i.color.alpha()] for i in items]
    return out


def main() -> int:
    """Load, check, render; print the JSON report on stdout."""
    ap = argparse.ArgumentParser()
    ap.add_argument("project")
    ap.add_argument("--png")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--layer", action="append", default=[])
    args = ap.parse_args()

    app = QgsApplication([], False)
    app.initQgis()
    report: dict[str, Any] = {"qgis": Qgis.version()}
    try:
        report["standalone"] = {}
        for spec in args.layer:
            key, _, source = spec.partition("=")
            if source.endswith((".tif", ".tiff")):
                layer: QgsMapLayer = QgsRasterLayer(source, key, "gdal")
            else:
                layer = QgsVectorLayer(source, key, "ogr")
            layer.loadDefaultMetadata()  # as QGIS desktop does when a file is added
            report["standalone"][key] = describe(layer)
            del layer  # before exitQgis: a layer outliving it crashes the interpreter

        project = QgsProject.instance()
        report["read"] = project.read(args.project)
        report["crs"] = project.crs().authid()
        root = project.layerTreeRoot()
        ordered = root.layerOrder()
        report["order"] = [lyr.name() for lyr in ordered]
        report["layers"] = [describe(lyr) for lyr in ordered]
        if args.png and ordered:
            settings = QgsMapSettings()
            settings.setLayers(ordered)
            settings.setDestinationCrs(project.crs())
            scene = ordered[-1]
            settings.setExtent(scene.extent())
            ext = scene.extent()
            height = round(args.width * ext.height() / ext.width())
            settings.setOutputSize(QSize(args.width, height))
            settings.setBackgroundColor(QColor(255, 255, 255))
            job = QgsMapRendererSequentialJob(settings)
            job.start()
            job.waitForFinished()
            image = job.renderedImage()
            report["png"] = bool(image.save(args.png, "PNG"))
            report["render_errors"] = [e.message for e in job.errors()]
    finally:
        QgsProject.instance().clear()
        app.exitQgis()
    json.dump(report, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # skip the interpreter's teardown of Qt objects (it may segfault)
