"""The geounet algorithms of the Processing toolbox: predict, fine-tune, evaluate.

Each algorithm turns its parameters into a ``geounet`` command line, runs it with
:func:`runner.run_geounet` (progress bar, log, cancel) and hands the outputs to QGIS,
which adds them to the project with the styles geounet wrote beside them.
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapLayer,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsProcessingUtils,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QCoreApplication, QUrl
from qgis.PyQt.QtGui import QDesktopServices

from .runner import SETTING, GeounetCancelled, GeounetError, Stage, find_geounet, run_geounet

TTA_CHOICES = ["none", "flips", "d4"]
WGS84 = "EPSG:4326"


def _enum(new: str, old: str) -> Any:
    """An enum value by its ``Qgis`` name (QGIS 3.36 on, the only one in QGIS 4) or its old one.

    Args:
        new: ``Enum.Member`` under ``qgis.core.Qgis``.
        old: ``Class.Member`` under ``qgis.core`` (QGIS 3.22 to 3.34).
    """
    import qgis.core

    for root, path in ((Qgis, new), (qgis.core, old)):
        value: Any = root
        try:
            for part in path.split("."):
                value = getattr(value, part)
        except AttributeError:
            continue
        return value
    raise AttributeError(f"neither Qgis.{new} nor {old} in this QGIS")


POLYGONS = _enum("ProcessingSourceType.VectorPolygon", "QgsProcessing.TypeVectorPolygon")
DOUBLE = _enum("ProcessingNumberParameterType.Double", "QgsProcessingParameterNumber.Double")
FOLDER = _enum("ProcessingFileParameterBehavior.Folder", "QgsProcessingParameterFile.Folder")
ADVANCED = _enum(
    "ProcessingParameterFlag.Advanced", "QgsProcessingParameterDefinition.FlagAdvanced"
)


def _tr(text: str) -> str:
    return QCoreApplication.translate("geounet", text)


def advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    """Show a parameter under "Advanced Parameters" (folded) in the dialog."""
    parameter.setFlags(parameter.flags() | ADVANCED)
    return parameter


class _DefaultStyle(QgsProcessingLayerPostProcessorInterface):
    """Load the style geounet wrote (``.qml`` sidecar, GeoPackage ``layer_styles``)."""

    def postProcessLayer(  # noqa: N802
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        """Apply the layer's default style once QGIS has loaded it."""
        layer.loadDefaultStyle()
        layer.triggerRepaint()


_POST_PROCESSORS: list[_DefaultStyle] = []
"""Python must keep the post-processors alive until QGIS has used them."""


def load_on_completion(
    context: QgsProcessingContext, source: str, name: str, output: str, kind: Any
) -> None:
    """Add an output to the project when the algorithm finishes, in geounet's style."""
    details = QgsProcessingContext.LayerDetails(name, context.project(), output)
    details.layerTypeHint = kind
    post = _DefaultStyle()
    _POST_PROCESSORS.append(post)
    details.setPostProcessor(post)
    context.addLayerToLoadOnCompletion(source, details)


def vector_path(
    alg: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
    feedback: QgsProcessingFeedback,
) -> str | None:
    """A file geounet reads for a vector parameter (a temporary copy if QGIS must make one).

    GeoPackages are copied too: geounet reads a file's first layer, and a GeoPackage can
    hold several; a selection or a filter on the layer is honoured by the copy.
    """
    if parameters.get(name) in (None, ""):
        return None
    path = alg.parameterAsCompatibleSourceLayerPath(
        parameters, name, context, ["geojson", "shp"], "gpkg", feedback
    )
    return path or None


class GeounetAlgorithm(QgsProcessingAlgorithm):
    """What the three algorithms share: names, help, the command, errors.

    Attributes:
        NAME: The algorithm's id in the provider (``geounet:<NAME>``).
        TITLE: Its name in the toolbox.
        HELP: The help text beside its dialog.
    """

    NAME = ""
    TITLE = ""
    HELP = ""

    def name(self) -> str:  # noqa: D102
        return self.NAME

    def displayName(self) -> str:  # noqa: D102, N802
        return _tr(self.TITLE)

    def shortHelpString(self) -> str:  # noqa: D102, N802
        return _tr(self.HELP)

    def createInstance(self) -> GeounetAlgorithm:  # noqa: D102, N802
        return type(self)()

    def group(self) -> str:  # noqa: D102
        return ""

    def groupId(self) -> str:  # noqa: D102, N802
        return ""

    def helpUrl(self) -> str:  # noqa: D102, N802
        return "https://github.com/geounet/geounet/blob/main/docs/QGIS.md"

    def scene_file(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        """The INPUT raster's file (or GDAL path); tile services and other providers refused."""
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        if layer is None or layer.providerType() != "gdal":
            raise QgsProcessingException(
                _tr(f"{self.displayName()} needs the scene as a raster file (a GeoTIFF or COG)")
            )
        return str(layer.source())

    def run_geounet(
        self,
        args: list[str],
        feedback: QgsProcessingFeedback,
        outputs: list[Path] | None = None,
        stages: list[Stage] | None = None,
    ) -> list[str]:
        """Run geounet; its refusal or the user's cancel become the algorithm's error."""
        from processing.core.ProcessingConfig import ProcessingConfig

        try:
            executable = find_geounet(ProcessingConfig.getSetting(SETTING))
            run = run_geounet(args, feedback, executable, outputs or [], stages or [])
        except (GeounetError, GeounetCancelled) as exc:
            raise QgsProcessingException(f"geounet: {exc}") from exc
        return run.stdout


class PredictAlgorithm(GeounetAlgorithm):
    """``geounet predict``: map the buildings of a raster layer, a file or a tile service."""

    INPUT = "INPUT"
    EXTENT = "EXTENT"
    AOI = "AOI"
    ZOOM = "ZOOM"
    MODEL = "MODEL"
    THRESHOLD = "THRESHOLD"
    REGULARIZE = "REGULARIZE"
    TTA = "TTA"
    OPTIONS = "OPTIONS"
    OUTPUT = "OUTPUT"
    PROBABILITY = "PROBABILITY"
    FOOTPRINTS = "FOOTPRINTS"

    NAME = "predict"
    TITLE = "Map buildings (predict)"
    HELP = (
        "Maps the buildings of a raster layer (a GeoTIFF, a COG by URL, or an XYZ tile "
        "layer) with geounet's U-Net: a building probability raster and a footprint "
        "layer, both added to the project in geounet's styles.\n\n"
        "Extent / area of interest: only that part of the scene is mapped (required for "
        "XYZ tile layers). Model: a .safetensors checkpoint, e.g. one fine-tuned on your "
        "town; the bundled model by default. Other options: any further geounet predict "
        "options, e.g. --tile 512 --device cuda."
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: D102, N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, _tr("Scene")))
        self.addParameter(
            QgsProcessingParameterExtent(self.EXTENT, _tr("Extent to map"), optional=True)
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.AOI,
                _tr("Area of interest (its bounding box is mapped)"),
                [POLYGONS],
                optional=True,
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    self.ZOOM,
                    _tr("Zoom level (XYZ tile layers; default: the layer's deepest)"),
                    minValue=0,
                    maxValue=24,
                    optional=True,
                )
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL,
                _tr("Model (.safetensors; default: the bundled model)"),
                extension="safetensors",
                optional=True,
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    self.THRESHOLD,
                    _tr("Probability threshold (default: the model's)"),
                    type=DOUBLE,
                    minValue=0.0,
                    maxValue=1.0,
                    optional=True,
                )
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.REGULARIZE, _tr("Square outlines to right angles"), defaultValue=True
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterEnum(
                    self.TTA, _tr("Test-time augmentation"), TTA_CHOICES, defaultValue=0
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterString(
                    self.OPTIONS, _tr("Other geounet predict options"), optional=True
                )
            )
        )
        self.addParameter(
            QgsProcessingParameterFolderDestination(self.OUTPUT, _tr("Output folder"))
        )
        self.addOutput(QgsProcessingOutputRasterLayer(self.PROBABILITY, _tr("Probability")))
        self.addOutput(QgsProcessingOutputVectorLayer(self.FOOTPRINTS, _tr("Footprints")))

    def processAlgorithm(  # noqa: D102, N802
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(_tr("the scene is not a raster layer or file"))
        out_dir = Path(self.parameterAsString(parameters, self.OUTPUT, context))
        out_dir.mkdir(parents=True, exist_ok=True)
        area = self._area(parameters, context, layer)
        scene, name, extra = self._scene(parameters, context, layer, area)
        args = ["predict", scene, "--out-dir", str(out_dir), "--name", name, "--overwrite"]
        args += extra
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if model:
            args += ["--model", model]
        if parameters.get(self.THRESHOLD) not in (None, ""):
            args += [
                "--threshold",
                str(self.parameterAsDouble(parameters, self.THRESHOLD, context)),
            ]
        squared = self.parameterAsBool(parameters, self.REGULARIZE, context)
        args.append("--regularize" if squared else "--no-regularize")
        tta = TTA_CHOICES[self.parameterAsEnum(parameters, self.TTA, context)]
        if tta != "none":
            args += ["--tta", tta]
        args += shlex.split(self.parameterAsString(parameters, self.OPTIONS, context) or "")
        probability = out_dir / f"{name}.prob.tif"
        footprints = out_dir / f"{name}.buildings.gpkg"
        sidecars = [probability.with_suffix(".qml"), probability.with_suffix(".qmd")]
        self.run_geounet(
            args,
            feedback,
            outputs=[probability, footprints, *sidecars],
            stages=(
                [Stage("predict", 0, 60), Stage("vectorise", 60, 70), Stage("square", 70, 100)]
                if squared  # on a CPU, squaring a dense town takes half as long as predicting
                else [Stage("predict", 0, 85), Stage("vectorise", 85, 100)]
            ),
        )
        load_on_completion(
            context,
            str(probability),
            f"{name} building probability",
            self.PROBABILITY,
            QgsProcessingUtils.LayerHint.Raster,
        )
        result: dict[str, Any] = {self.PROBABILITY: str(probability), self.OUTPUT: str(out_dir)}
        if footprints.exists():
            load_on_completion(
                context,
                f"{footprints}|layername=buildings",
                f"{name} buildings",
                self.FOOTPRINTS,
                QgsProcessingUtils.LayerHint.Vector,
            )
            result[self.FOOTPRINTS] = str(footprints)
        return result

    def _area(
        self, parameters: dict[str, Any], context: QgsProcessingContext, layer: QgsRasterLayer
    ) -> QgsRectangle | None:
        """The part to map, in the scene's CRS: the extent, else the AOI's bounds, else all."""
        if parameters.get(self.EXTENT) not in (None, ""):
            return self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
        aoi = self.parameterAsVectorLayer(parameters, self.AOI, context)
        if aoi is None:
            return None
        transform = QgsCoordinateTransform(aoi.crs(), layer.crs(), context.transformContext())
        return transform.transformBoundingBox(aoi.extent())

    def _scene(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        layer: QgsRasterLayer,
        area: QgsRectangle | None,
    ) -> tuple[str, str, list[str]]:
        """What geounet predicts: ``(scene, output stem, extra arguments)``."""
        source = layer.source()
        if layer.providerType() == "wms" and "type=xyz" in source:
            return self._tile_service(parameters, context, layer, area)
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                _tr(
                    f"{layer.name()} is a {layer.providerType()} layer; geounet maps GDAL "
                    "rasters (files, COG URLs) and XYZ tile layers. Export it with "
                    "Raster > Conversion > Translate first"
                )
            )
        stem = Path(source.split("|")[0]).stem or "scene"
        if area is None:
            return source, stem, []
        from osgeo import gdal

        gdal.UseExceptions()
        crop = Path(tempfile.mkdtemp(dir=QgsProcessingUtils.tempFolder())) / f"{stem}.vrt"
        window = [area.xMinimum(), area.yMaximum(), area.xMaximum(), area.yMinimum()]
        try:
            gdal.Translate(str(crop), source, format="VRT", projWin=window)
        except RuntimeError as exc:
            raise QgsProcessingException(
                _tr(f"the extent does not overlap {layer.name()}: {exc}")
            ) from exc
        return str(crop), stem, []

    def _tile_service(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        layer: QgsRasterLayer,
        area: QgsRectangle | None,
    ) -> tuple[str, str, list[str]]:
        query = parse_qs(layer.source())
        url = (query.get("url") or [""])[0]
        if not url:
            raise QgsProcessingException(_tr(f"{layer.name()} names no tile URL"))
        if area is None:
            raise QgsProcessingException(
                _tr(f"{layer.name()} is a tile service: set an extent or an area of interest")
            )
        to_wgs84 = QgsCoordinateTransform(
            layer.crs(), QgsCoordinateReferenceSystem(WGS84), context.transformContext()
        )
        box = to_wgs84.transformBoundingBox(area)
        if parameters.get(self.ZOOM) not in (None, ""):
            zoom = self.parameterAsInt(parameters, self.ZOOM, context)
        else:
            zoom = int((query.get("zmax") or ["19"])[0])
        bbox = f"{box.xMinimum()},{box.yMinimum()},{box.xMaximum()},{box.yMaximum()}"
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in layer.name()) or "tiles"
        return url, stem, ["--bbox", bbox, "--zoom", str(zoom)]


class FinetuneAlgorithm(GeounetAlgorithm):
    """``geounet finetune``: adapt the model to a town from footprints digitised there."""

    INPUT = "INPUT"
    LABELS = "LABELS"
    AOI = "AOI"
    MODEL = "MODEL"
    MINUTES = "MINUTES"
    RESUME = "RESUME"
    OUTPUT = "OUTPUT"

    NAME = "finetune"
    TITLE = "Fine-tune on your town"
    HELP = (
        "Adapts the model to your town from a few hundred footprints you digitised on the "
        "scene. Training chips are drawn only inside the area of interest (where your "
        "labels are complete), by default the footprints' convex hull. The log ends with "
        "what the new model scored on a held-out part of your area. Use the output model "
        "in 'Map buildings'. Cancelling keeps the last good checkpoint; tick 'Resume' to "
        "continue it."
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: D102, N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, _tr("Scene")))
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.LABELS, _tr("Your building footprints"), [POLYGONS]
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                self.AOI,
                _tr("Area where the footprints are complete"),
                [POLYGONS],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL,
                _tr("Model to start from (default: the bundled model)"),
                extension="safetensors",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MINUTES,
                _tr("Time budget (minutes)"),
                type=DOUBLE,
                minValue=0.1,
                defaultValue=12.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.RESUME, _tr("Resume the run of this output"), defaultValue=False
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, _tr("Fine-tuned model"), "geounet model (*.safetensors)"
            )
        )

    def processAlgorithm(  # noqa: D102, N802
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        scene = self.scene_file(parameters, context)
        labels = vector_path(self, parameters, self.LABELS, context, feedback)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        args = ["finetune", "--images", scene, "--labels", str(labels), "--out", out]
        aoi = vector_path(self, parameters, self.AOI, context, feedback)
        if aoi:
            args += ["--aoi", aoi]
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if model:
            args += ["--model", model]
        args += ["--minutes", str(self.parameterAsDouble(parameters, self.MINUTES, context))]
        args.append(
            "--resume" if self.parameterAsBool(parameters, self.RESUME, context) else "--overwrite"
        )
        self.run_geounet(args, feedback, stages=[Stage("training", 0, 95)])
        return {self.OUTPUT: out}


class EvaluateAlgorithm(GeounetAlgorithm):
    """``geounet evaluate``: score predicted footprints against true ones."""

    INPUT = "INPUT"
    TRUTH = "TRUTH"
    PREDICTION = "PREDICTION"
    OPEN_REPORT = "OPEN_REPORT"
    OUTPUT = "OUTPUT"
    REPORT = "REPORT"
    OBJECTS = "OBJECTS"

    NAME = "evaluate"
    TITLE = "Evaluate against true footprints"
    HELP = (
        "Scores the output folder of 'Map buildings' against true footprints: pixel IoU, "
        "accuracy and sensitivity, and object precision, recall and F1 (a footprint counts "
        "when it overlaps a true one with IoU 0.5 or more). Writes report.html (opened in "
        "the browser) and objects.gpkg (each footprint marked true positive, false positive "
        "or missed), added to the project."
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: D102, N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, _tr("Scene")))
        self.addParameter(
            QgsProcessingParameterVectorLayer(self.TRUTH, _tr("True footprints"), [POLYGONS])
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.PREDICTION,
                _tr("Output folder of 'Map buildings'"),
                behavior=FOLDER,
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.OPEN_REPORT, _tr("Open the report in the browser"), defaultValue=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFolderDestination(self.OUTPUT, _tr("Report folder"))
        )
        self.addOutput(QgsProcessingOutputFile(self.REPORT, _tr("Report")))
        self.addOutput(QgsProcessingOutputVectorLayer(self.OBJECTS, _tr("Evaluated footprints")))

    def processAlgorithm(  # noqa: D102, N802
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        scene = self.scene_file(parameters, context)
        truth = vector_path(self, parameters, self.TRUTH, context, feedback)
        prediction = Path(self.parameterAsFile(parameters, self.PREDICTION, context))
        stem = Path(scene).stem
        out_dir = Path(self.parameterAsString(parameters, self.OUTPUT, context))
        args = ["evaluate", scene, "--truth", str(truth), "--out-dir", str(out_dir)]
        found = False
        for option, suffix in (("--prob", ".prob.tif"), ("--footprints", ".buildings.gpkg")):
            path = prediction / f"{stem}{suffix}"
            if path.exists():
                args += [option, str(path)]
                found = True
        if not found:
            raise QgsProcessingException(
                _tr(
                    f"{prediction} holds no {stem}.prob.tif or {stem}.buildings.gpkg; "
                    "choose the output folder of 'Map buildings' for this scene"
                )
            )
        args.append("--overwrite")
        report = out_dir / "report.html"
        objects = out_dir / "objects.gpkg"
        self.run_geounet(args, feedback, outputs=[out_dir / "report.json", report, objects])
        self._report = (
            str(report) if self.parameterAsBool(parameters, self.OPEN_REPORT, context) else ""
        )
        result: dict[str, Any] = {self.REPORT: str(report), self.OUTPUT: str(out_dir)}
        if objects.exists():
            load_on_completion(
                context,
                f"{objects}|layername=objects",
                f"{stem} evaluated footprints",
                self.OBJECTS,
                QgsProcessingUtils.LayerHint.Vector,
            )
            result[self.OBJECTS] = str(objects)
        return result

    def postProcessAlgorithm(  # noqa: D102, N802
        self, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        if getattr(self, "_report", ""):
            QDesktopServices.openUrl(QUrl.fromLocalFile(self._report))
        return {}
