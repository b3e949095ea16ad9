"""The geounet Processing provider: its algorithms and its one setting."""

from __future__ import annotations

import shutil
from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import EvaluateAlgorithm, FinetuneAlgorithm, PredictAlgorithm
from .runner import SETTING

ICON = Path(__file__).with_name("icon.svg")


class GeounetProvider(QgsProcessingProvider):
    """Predict, fine-tune and evaluate, each running the configured ``geounet`` command."""

    def id(self) -> str:  # noqa: D102
        return "geounet"

    def name(self) -> str:  # noqa: D102
        return "geounet"

    def longName(self) -> str:  # noqa: D102, N802
        return "geounet: building footprints from aerial imagery"

    def icon(self) -> QIcon:  # noqa: D102
        return QIcon(str(ICON))

    def load(self) -> bool:
        """Register the setting (Processing > Options > Providers > geounet), then the tools."""
        from processing.core.ProcessingConfig import ProcessingConfig, Setting

        ProcessingConfig.settingIcons[self.name()] = self.icon()
        ProcessingConfig.addSetting(
            Setting(
                self.name(),
                SETTING,
                "geounet command (its path, or its virtual environment)",
                shutil.which("geounet") or "",
                valuetype=Setting.FILE,
            )
        )
        ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        """Remove the setting with the provider."""
        from processing.core.ProcessingConfig import ProcessingConfig

        ProcessingConfig.removeSetting(SETTING)

    def loadAlgorithms(self) -> None:  # noqa: D102, N802
        for algorithm in (PredictAlgorithm(), FinetuneAlgorithm(), EvaluateAlgorithm()):
            self.addAlgorithm(algorithm)
