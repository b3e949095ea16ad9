"""The QGIS plugin: registers the geounet Processing provider."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from .provider import GeounetProvider


class GeounetPlugin:
    """Adds the geounet tools to the Processing toolbox."""

    def __init__(self, iface: Any = None) -> None:
        """Keep QGIS's interface (unused: the plugin lives in the Processing toolbox)."""
        self.iface = iface
        self.provider: GeounetProvider | None = None

    def initProcessing(self) -> None:  # noqa: N802
        """Register the provider (also called by headless QGIS, without a GUI)."""
        self.provider = GeounetProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        """Called by QGIS when the plugin loads."""
        self.initProcessing()

    def unload(self) -> None:
        """Called by QGIS when the plugin is unloaded."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
