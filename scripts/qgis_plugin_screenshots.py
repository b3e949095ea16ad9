"""Screenshots of the QGIS plugin for docs/QGIS.md: its dialog after a run, and the result.

Run with the system Python that has QGIS (Debian's ``python3-qgis``), from the repository::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/qgis_plugin_screenshots.py \
        .venv/bin/geounet --out docs/

It opens the "Map buildings (predict)" dialog on the Kampala test scene (area b), runs it
through the dialog's own feedback (so the Log tab shows the real run), grabs the dialog
(``qgis_plugin_dialog.png``), then renders the layers the run adds to the project, in the
styles they load with (``qgis_plugin_result.jpg``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("GDAL_PAM_ENABLED", "NO")  # no .aux.xml beside the sample scene

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsMapCanvas  # noqa: E402
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "sample_data" / "kampala_b_z21.tif"


class Iface:
    """The little of QGIS's interface the Processing dialog asks for."""

    def __init__(self) -> None:
        self.canvas = QgsMapCanvas()

    def mapCanvas(self) -> QgsMapCanvas:  # noqa: N802
        """A canvas nobody sees (the extent widgets ask for one)."""
        return self.canvas

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def main() -> None:
    """Make both screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("geounet", help="the geounet command the plugin runs")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()

    app = QgsApplication([], True)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    sys.path.insert(0, str(ROOT / "qgis_plugin"))
    import qgis.utils

    qgis.utils.iface = Iface()
    from processing.core.Processing import Processing
    from processing.core.ProcessingConfig import ProcessingConfig

    Processing.initialize()
    import geounet_qgis
    import processing
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    plugin = geounet_qgis.classFactory(qgis.utils.iface)
    plugin.initProcessing()
    ProcessingConfig.setSettingValue("GEOUNET_EXECUTABLE", args.geounet)
    project = QgsProject.instance()
    scene = QgsRasterLayer(str(SCENE), SCENE.stem)
    project.addMapLayer(scene)

    out_dir = Path(tempfile.mkdtemp(prefix="geounet-qgis-"))
    params = {"INPUT": scene.id(), "OUTPUT": str(out_dir)}
    alg = QgsApplication.processingRegistry().algorithmById("geounet:predict")
    dialog = AlgorithmDialog(alg.create(), False, None)
    dialog.setParameters(params)
    dialog.resize(980, 640)
    dialog.show()
    context = QgsProcessingContext()
    context.setProject(project)
    feedback: QgsProcessingFeedback = dialog.createFeedback()
    processing.run("geounet:predict", params, context=context, feedback=feedback)
    dialog.showLog()
    app.processEvents()
    args.out.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(args.out / "qgis_plugin_dialog.png"))

    layers = [scene]
    for source, details in context.layersToLoadOnCompletion().items():
        layer = QgsProcessingUtils.mapLayerFromString(source, context)
        layer.setName(details.name)
        details.postProcessor().postProcessLayer(layer, context, feedback)
        project.addMapLayer(layer)
        layers.insert(0, layer)
    settings = QgsMapSettings()
    settings.setLayers(sorted(layers, key=lambda layer: layer.type()))  # vector above raster
    settings.setDestinationCrs(scene.crs())
    settings.setExtent(scene.extent())
    settings.setOutputSize(QSize(640, 640))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    job.renderedImage().save(str(args.out / "qgis_plugin_result.jpg"), "JPG", 85)
    print(args.out / "qgis_plugin_dialog.png", args.out / "qgis_plugin_result.jpg")
    app.exitQgis()


if __name__ == "__main__":
    main()
