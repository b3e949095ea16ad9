"""Scene catalogues: which scenes a workflow maps, and where their ground truth lies.

Two forms are accepted:

* a CSV or TSV table with the columns ``scene_id``, ``image`` and optionally ``truth``
  and ``existing`` (buildings already mapped there, to conflate the footprints with) and
  ``finetune_labels`` (footprints digitised in the scene, to fine-tune the model on before
  mapping it; paths relative to the catalogue file; other columns are ignored, ``#``
  starts a comment line);
* a STAC ItemCollection, Catalog or Collection JSON (read with pystac) whose items carry
  the image as an asset keyed ``image`` (or the first asset with role ``data``, or the
  first GeoTIFF asset) and, optionally, the truth as an asset keyed ``labels``/``truth``
  or with role ``labels``/``label``, the existing buildings as an asset keyed
  ``existing`` and the fine-tuning footprints as one keyed ``finetune_labels``; the item
  id is the scene id.

Every row is checked against :data:`ROW_SCHEMA`; scene ids must be unique (case-insensitive,
for case-insensitive file systems) and safe as folder names, so that no catalogue entry can
write outside the results folder; listed files must exist. Problems are reported as one line.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import jsonschema

from geounet.errors import InputError
from geounet.io.remote import is_local, is_remote

SCENE_ID_PATTERN = r"^(?!\.{1,2}$)[A-Za-z0-9_.-]+$"
"""Safe scene ids: letters, digits, ``_``, ``.``, ``-``; not ``.`` or ``..``."""

ROW_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "geounet scene catalogue row",
    "type": "object",
    "required": ["scene_id", "image"],
    "properties": {
        "scene_id": {"type": "string", "pattern": SCENE_ID_PATTERN, "maxLength": 200},
        "image": {"type": "string", "minLength": 1},
        "truth": {"type": ["string", "null"]},
        "existing": {"type": ["string", "null"]},
        "finetune_labels": {"type": ["string", "null"]},
    },
}

STAC_SUFFIXES = (".json", ".geojson")
IMAGE_KEYS = ("image", "visual", "data")
TRUTH_KEYS = ("labels", "label", "truth")
TRUTH_ROLES = ("labels", "label", "truth")
GEOTIFF_TYPES = ("image/tiff", "image/vnd.stac.geotiff")


@dataclass(frozen=True)
class Scene:
    """One catalogue entry.

    Attributes:
        scene_id: Safe, unique name of the scene (its results folder).
        image: Absolute path of the scene raster, or its URL / GDAL path (a string).
        truth: Absolute path of its true footprints, or ``None``.
        existing: Absolute path of the buildings already mapped there (an OSM extract,
            open buildings, a city layer), or ``None``.
        finetune_labels: Absolute path of footprints digitised in the scene to fine-tune
            the model on before mapping it, or ``None``.
    """

    scene_id: str
    image: Path | str
    truth: Path | None = None
    existing: Path | None = None
    finetune_labels: Path | None = None


def read_catalogue(path: str | os.PathLike[str], check_files: bool = True) -> list[Scene]:
    """Read and validate a scene catalogue (CSV/TSV table or STAC JSON).

    Args:
        path: The catalogue file.
        check_files: Also check that every listed image and truth file exists.

    Returns:
        The scenes, in catalogue order.

    Raises:
        InputError: On a missing or malformed catalogue, a missing column, an unsafe or
            repeated scene id, or a missing file (one line, naming the first problem and
            how many more there are).
    """
    p = Path(path)
    if not p.is_file():
        what = "is a directory" if p.is_dir() else "does not exist"
        raise InputError(f"catalogue {p} {what}; pass a CSV/TSV or STAC JSON file")
    rows = _stac_rows(p) if p.suffix.lower() in STAC_SUFFIXES else _table_rows(p)
    return _validate(p, rows, check_files)


def _table_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Rows of a CSV/TSV catalogue as ``(where, row)``, paths resolved against its folder."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read catalogue {path}: {exc}") from exc
    numbered = [
        (n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise InputError(f"catalogue {path} is empty; expected a header scene_id,image[,truth]")
    header_line = numbered[0][1]
    delimiter = "\t" if path.suffix.lower() == ".tsv" or "\t" in header_line else ","
    header = [h.strip().lower() for h in next(csv.reader([header_line], delimiter=delimiter))]
    missing = [c for c in ("scene_id", "image") if c not in header]
    if missing:
        raise InputError(
            f"catalogue {path} lacks the column(s) {', '.join(missing)}; its header must "
            f"name scene_id,image[,truth] (found: {','.join(header)})"
        )
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise InputError(f"catalogue {path} repeats the column(s) {', '.join(dupes)}")
    rows: list[tuple[str, dict[str, Any]]] = []
    for n, line in numbered[1:]:
        values = next(csv.reader(io.StringIO(line), delimiter=delimiter), [])
        if len(values) > len(header):
            rows.append(
                (
                    f"line {n}",
                    {
                        "__error__": f"{len(values)} fields for {len(header)} "
                        "columns (quote fields that contain the delimiter)"
                    },
                )
            )
            continue
        cells = {h: v.strip() for h, v in zip(header, values, strict=False)}
        row: dict[str, Any] = {"scene_id": cells.get("scene_id", "")}
        row["image"] = _resolve(path.parent, cells.get("image", ""))
        for column in ("truth", "existing", "finetune_labels"):
            value = cells.get(column, "")
            row[column] = _resolve(path.parent, value) if value else None
        rows.append((f"line {n}", row))
    if not rows:
        raise InputError(f"catalogue {path} lists no scene (only a header)")
    return rows


def _stac_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Rows of a STAC ItemCollection / Catalog / Collection / Item JSON file."""
    import pystac

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read catalogue {path} as JSON: {exc}") from exc
    try:
        if isinstance(data, dict) and data.get("type") == "FeatureCollection":
            items = list(pystac.ItemCollection.from_dict(data, preserve_dict=False))
        else:
            obj = pystac.read_file(str(path))
            if isinstance(obj, pystac.Item):
                items = [obj]
            elif isinstance(obj, pystac.Catalog):
                items = list(obj.get_items(recursive=True))
            else:
                raise InputError(f"{path} is a STAC {type(obj).__name__}, not a catalogue of items")
    except InputError:
        raise
    except Exception as exc:  # pystac raises many kinds of errors on bad documents
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path} is not a readable STAC catalogue: {first}") from exc
    if not items:
        raise InputError(f"STAC catalogue {path} holds no item")
    rows: list[tuple[str, dict[str, Any]]] = []
    for k, item in enumerate(items, start=1):
        where = f"item {k} ({item.id!r})"
        image = _pick_asset(item.assets, IMAGE_KEYS, ("data",), GEOTIFF_TYPES)
        if image is None:
            rows.append((where, {"__error__": "has no image asset (key 'image' or role 'data')"}))
            continue
        truth = _pick_asset(item.assets, TRUTH_KEYS, TRUTH_ROLES, ())
        existing = item.assets.get("existing")
        tune = item.assets.get("finetune_labels")
        self_href = item.get_self_href()
        base = Path(self_href).parent if self_href else path.parent
        try:
            row = {
                "scene_id": item.id,
                "image": _stac_href(image, base),
                "truth": _stac_href(truth, base) if truth is not None else None,
                "existing": _stac_href(existing, base) if existing is not None else None,
                "finetune_labels": _stac_href(tune, base) if tune is not None else None,
            }
        except InputError as exc:
            rows.append((where, {"__error__": str(exc)}))
            continue
        rows.append((where, row))
    return rows


def _pick_asset(
    assets: Mapping[str, Any], keys: Iterable[str], roles: Iterable[str], types: Iterable[str]
) -> Any:
    """The first asset by key, then by role, then by media type (or ``None``)."""
    for key in keys:
        if key in assets:
            return assets[key]
    roles, types = tuple(roles), tuple(types)
    for asset in assets.values():
        if set(asset.roles or ()) & set(roles):
            return asset
    for asset in assets.values():
        if asset.media_type and asset.media_type.split(";")[0].strip() in types:
            return asset
    return None


def _stac_href(asset: Any, base: Path) -> str:
    """The path or URL of an asset href.

    Relative hrefs resolve against ``base``; http(s), s3, gs and az URLs stay URLs (GDAL
    reads them by range requests).
    """
    href = str(asset.href)
    parsed = urlparse(href)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    if is_remote(href):
        return href
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive
        raise InputError(
            f"asset href {href} is neither a local file nor an http(s), s3, gs or az URL"
        )
    return _resolve(base, href)


def _resolve(base: Path, value: str) -> str:
    """A path relative to the catalogue's folder, made absolute (empty stays empty)."""
    if not value:
        return ""
    if is_remote(value):
        return value  # a URL or GDAL path, read where it is
    p = Path(os.path.expanduser(value))
    return os.path.normpath(p if p.is_absolute() else base / p)


def _validate(path: Path, rows: list[tuple[str, dict[str, Any]]], check_files: bool) -> list[Scene]:
    validator = jsonschema.Draft202012Validator(ROW_SCHEMA)
    problems: list[str] = []
    scenes: list[Scene] = []
    seen: dict[str, str] = {}
    for where, row in rows:
        if "__error__" in row:
            problems.append(f"{where}: {row['__error__']}")
            continue
        errors = sorted(validator.iter_errors(row), key=lambda e: list(e.path))
        if errors:
            problems.append(f"{where}: {_describe(errors[0], row)}")
            continue
        sid = row["scene_id"]
        if sid.lower() in seen:
            problems.append(f"{where}: scene_id {sid!r} repeats {seen[sid.lower()]}")
            continue
        seen[sid.lower()] = where
        if check_files:
            for col in ("image", "truth", "existing", "finetune_labels"):
                f = row.get(col)
                if f and is_local(f) and not Path(f).is_file():
                    what = "is a directory" if Path(f).is_dir() else "not found"
                    problems.append(f"{where} (scene {sid}): {col} {f} {what}")
        files = [row.get(c) for c in ("truth", "existing", "finetune_labels")]
        image = Path(row["image"]) if is_local(row["image"]) else row["image"]
        scenes.append(Scene(sid, image, *(Path(f) if f else None for f in files)))
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise InputError(f"catalogue {path}, {problems[0]}{more}")
    return scenes


def _describe(error: jsonschema.ValidationError, row: Mapping[str, Any]) -> str:
    field = str(error.path[0]) if error.path else ""
    if field == "scene_id":
        value = row.get("scene_id")
        if not value:
            return "empty scene_id"
        return (
            f"scene_id {value!r} is not a safe folder name: use only letters, digits, "
            "'_', '.' and '-' (no '/', not '.' or '..'), at most 200 characters"
        )
    if field == "image":
        return "empty image path"
    return error.message.splitlines()[0]
