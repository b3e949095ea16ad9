"""geounet for QGIS: predict, fine-tune and evaluate from the Processing toolbox.

The plugin runs the ``geounet`` command of the environment geounet is installed in (QGIS's
own Python usually lacks torch); set its path in Processing > Options > Providers > geounet.
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:  # noqa: N802
    """QGIS's entry point: the plugin object."""
    from .plugin import GeounetPlugin

    return GeounetPlugin(iface)
