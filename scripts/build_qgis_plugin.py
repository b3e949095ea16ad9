"""Build the QGIS plugin's zip, ready for Plugins > Manage and Install Plugins > Install from ZIP.

    python scripts/build_qgis_plugin.py [--out dist/]    # -> dist/geounet_qgis-<version>.zip

The zip holds one folder, ``geounet_qgis/`` (QGIS's convention), with the plugin's sources,
metadata and icon, and the project's LICENSE; the version in ``metadata.txt`` must be the
package's (``pyproject.toml``), so that a plugin and the geounet it runs are released together.
"""

from __future__ import annotations

import argparse
import configparser
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "qgis_plugin" / "geounet_qgis"
SHIPPED = {".py", ".txt", ".svg"}


def plugin_version() -> str:
    """The version in the plugin's ``metadata.txt``."""
    meta = configparser.ConfigParser()
    meta.read(PLUGIN / "metadata.txt", encoding="utf-8")
    return meta["general"]["version"]


def package_version() -> str:
    """The version of the geounet package in ``pyproject.toml``."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def build(out_dir: Path) -> Path:
    """Write ``geounet_qgis-<version>.zip`` into ``out_dir`` (atomically) and return it."""
    version = plugin_version()
    if version != package_version():
        raise SystemExit(
            f"error: the plugin's metadata.txt says version {version}, pyproject.toml "
            f"{package_version()}; make them the same"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN.name}-{version}.zip"
    work = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(work, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(PLUGIN.rglob("*")):
            if path.is_file() and path.suffix in SHIPPED and "__pycache__" not in path.parts:
                zf.write(path, Path(PLUGIN.name) / path.relative_to(PLUGIN))
        zf.write(ROOT / "LICENSE", Path(PLUGIN.name) / "LICENSE")
    work.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Build the zip; print its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zip")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
