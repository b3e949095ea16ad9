"""Run the geounet QGIS plugin's algorithms in headless QGIS; print what happened as JSON.

Run with the system Python that has Debian's ``python3-qgis`` (not the project's venv)::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_plugin_check.py GEOUNET SCENARIO
        --scene S.tif --out DIR [--truth T.gpkg] [--model M] [--options "..."]

GEOUNET is the ``geounet`` command the provider is pointed at (its setting). SCENARIO:

- ``providers``: the provider registers and lists its algorithms;
- ``predict``: ``processing.run("geounet:predict")``, then the outputs loaded as QGIS
  loads them on completion (with the provider's post-processors) and, with ``--truth``,
  ``geounet:evaluate`` on them; with ``--xyz TEMPLATE`` the scene is an XYZ tile layer of
  that URL (``--extent`` and ``--zoom`` then say what to map);
- ``finetune``: ``geounet:finetune`` of ``--model`` on ``--scene`` and ``--truth`` (the
  footprints), for ``--minutes``, into ``--out`` (a .safetensors file);
- ``cancel``: predict, cancelled through the feedback once the tiles are under way;
- ``error``: predict with ``--model`` (a bad checkpoint): the algorithm's error.

``tests/test_qgis_plugin.py`` runs this script and checks its report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
)

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "geounet_qgis"
sys.path.append("/usr/share/qgis/python/plugins")


class Recorder(QgsProcessingFeedback):
    """Feedback that remembers the progress and log; cancels on request."""

    def __init__(self, cancel_at: float | None = None) -> None:
        super().__init__()
        self.progress: list[float] = []
        self.texts: list[str] = []
        self.log: list[str] = []
        self.cancel_at = cancel_at
        self.cancelled_at: float | None = None
        self.progressChanged.connect(self._on_progress)

    def _on_progress(self, value: float) -> None:
        self.progress.append(value)
        if self.cancel_at is not None and value >= self.cancel_at and not self.isCanceled():
            self.cancelled_at = time.monotonic()
            self.cancel()

    def setProgressText(self, text: str) -> None:  # noqa: N802
        self.texts.append(text)
        super().setProgressText(text)

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.log.append(info)
        super().pushInfo(info)


def describe(layer: QgsMapLayer | None) -> dict[str, Any]:
    """Validity, CRS, renderer and size of a loaded layer."""
    if layer is None:
        return {"valid": False}
    out: dict[str, Any] = {
        "valid": layer.isValid(),
        "crs": layer.crs().authid(),
        "name": layer.name(),
        "renderer": layer.renderer().type() if layer.renderer() is not None else None,
    }
    if layer.type() == QgsMapLayer.VectorLayer:
        out["features"] = layer.featureCount()
    return out


def loaded_outputs(context: QgsProcessingContext) -> dict[str, Any]:
    """Load the outputs as QGIS does on completion, post-processors included."""
    loaded: dict[str, Any] = {}
    for source, details in context.layersToLoadOnCompletion().items():
        layer = QgsProcessingUtils.mapLayerFromString(
            source, context, typeHint=details.layerTypeHint
        )
        if layer is not None:
            layer.setName(details.name)
            QgsProject.instance().addMapLayer(layer)
            post = details.postProcessor()
            if post is not None:
                post.postProcessLayer(layer, context, QgsProcessingFeedback())
        loaded[details.outputName] = describe(layer)
    return loaded


def run(alg: str, params: dict[str, Any], feedback: Recorder) -> dict[str, Any]:
    """processing.run with a fresh context; the result or the error."""
    import processing

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    started = time.monotonic()
    try:
        results = processing.run(alg, params, context=context, feedback=feedback)
        error = None
    except QgsProcessingException as exc:
        results, error = {}, str(exc)
    report: dict[str, Any] = {
        "results": {k: str(v) for k, v in results.items()},
        "error": error,
        "seconds": round(time.monotonic() - started, 2),
        "progress_max": max(feedback.progress, default=None),
        "progress_steps": len(feedback.progress),
        "texts": sorted(set(feedback.texts))[:20],
        "log_tail": feedback.log[-5:],
    }
    if feedback.cancelled_at is not None:
        report["stopped_after_cancel_s"] = round(time.monotonic() - feedback.cancelled_at, 2)
    if error is None:
        report["loaded"] = loaded_outputs(context)
    return report


def main() -> None:
    """Parse the arguments, run the scenario, print the JSON report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("geounet")
    parser.add_argument("scenario", choices=["providers", "predict", "finetune", "cancel", "error"])
    parser.add_argument("--scene")
    parser.add_argument("--out")
    parser.add_argument("--truth")
    parser.add_argument("--model")
    parser.add_argument("--options", default="")
    parser.add_argument("--xyz", help="URL template of an XYZ tile layer to map instead")
    parser.add_argument("--extent", help="extent to map: xmin,xmax,ymin,ymax [CRS]")
    parser.add_argument("--zoom", type=int)
    parser.add_argument("--minutes", type=float, default=0.1)
    parser.add_argument(
        "--plugins", default=str(ROOT / "qgis_plugin"), help="folder the plugin is installed in"
    )
    args = parser.parse_args()

    app = QgsApplication([], False)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    import qgis.utils
    from processing.core.ProcessingConfig import ProcessingConfig

    # as QGIS starts a plugin installed in its plugins folder (metadata.txt read first)
    qgis.utils.plugin_paths = [args.plugins]
    sys.path.insert(0, args.plugins)
    qgis.utils.updateAvailablePlugins()
    started = qgis.utils.loadPlugin(PLUGIN) and qgis.utils.startProcessingPlugin(PLUGIN)
    registry = QgsApplication.processingRegistry()
    report: dict[str, Any] = {
        "started": started,
        "metadata": {
            key: qgis.utils.pluginMetadata(PLUGIN, key)
            for key in ("name", "version", "qgisMinimumVersion", "hasProcessingProvider")
        },
        "algorithms": sorted(
            a.id() for a in registry.algorithms() if a.provider().id() == "geounet"
        ),
    }
    if not started:
        print(json.dumps(report))
        return
    ProcessingConfig.setSettingValue("GEOUNET_EXECUTABLE", args.geounet)
    params: dict[str, Any] = {"INPUT": args.scene, "OUTPUT": args.out, "OPTIONS": args.options}
    if args.xyz:
        uri = f"type=xyz&url={quote(args.xyz, safe=':/')}&zmax={args.zoom or 19}&zmin=0"
        layer = QgsRasterLayer(uri, "my tiles", "wms")
        QgsProject.instance().addMapLayer(layer)
        params.update(INPUT=layer.id(), ZOOM=args.zoom)
    if args.extent:
        params["EXTENT"] = args.extent
    if args.scenario == "predict":
        report["predict"] = run("geounet:predict", params, Recorder())
        if args.truth:
            evaluate = {
                "INPUT": args.scene,
                "TRUTH": args.truth,
                "PREDICTION": args.out,
                "OPEN_REPORT": False,
                "OUTPUT": str(Path(args.out) / "eval"),
            }
            report["evaluate"] = run("geounet:evaluate", evaluate, Recorder())
    elif args.scenario == "finetune":
        tune = {
            "INPUT": args.scene,
            "LABELS": args.truth,
            "MODEL": args.model,
            "MINUTES": args.minutes,
            "OUTPUT": args.out,
        }
        report["finetune"] = run("geounet:finetune", tune, Recorder())
        args.out = None  # a file, not a folder of outputs
    elif args.scenario == "cancel":
        report["cancel"] = run("geounet:predict", params, Recorder(cancel_at=5.0))
    elif args.scenario == "error":
        report["error"] = run("geounet:predict", {**params, "MODEL": args.model}, Recorder())
    if args.out and Path(args.out).exists():
        report["files"] = sorted(
            str(p.relative_to(args.out)) for p in Path(args.out).rglob("*") if p.is_file()
        )
    report["unloaded"] = (
        qgis.utils.unloadPlugin(PLUGIN) and registry.providerById("geounet") is None
    )
    print(json.dumps(report))
    app.exitQgis()


if __name__ == "__main__":
    main()
