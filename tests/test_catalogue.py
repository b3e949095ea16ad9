import json
from pathlib import Path

import pystac
import pytest

from geounet.errors import InputError
from geounet.io.catalogue import read_catalogue
from tests.conftest import SAMPLE


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder with two small 'images' and a truth file (contents are not read)."""
    (tmp_path / "img").mkdir()
    for name in ("a.tif", "b.tif"):
        (tmp_path / "img" / name).write_bytes(b"x")
    (tmp_path / "truth.gpkg").write_bytes(b"x")
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def one_line(exc: pytest.ExceptionInfo[InputError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_csv_paths_are_relative_to_the_catalogue(files: Path) -> None:
    cat = write(
        files / "cat.csv",
        "# my scenes\nscene_id,image,truth,notes\nA_1,img/a.tif,truth.gpkg,x\n\nb.2,img/b.tif,,\n",
    )
    scenes = read_catalogue(cat)
    assert [s.scene_id for s in scenes] == ["A_1", "b.2"]
    assert scenes[0].image == files / "img" / "a.tif"
    assert scenes[0].truth == files / "truth.gpkg"
    assert scenes[1].truth is None


def test_existing_buildings_to_conflate_with(files: Path) -> None:
    (files / "osm.gpkg").write_bytes(b"x")
    cat = write(files / "cat.csv", "scene_id,image,existing\na,img/a.tif,osm.gpkg\nb,img/b.tif,\n")
    a, b = read_catalogue(cat)
    assert a.existing == files / "osm.gpkg" and a.truth is None and b.existing is None
    tune = write(files / "tune.csv", "scene_id,image,finetune_labels\na,img/a.tif,truth.gpkg\n")
    (scene,) = read_catalogue(tune)
    assert scene.finetune_labels == files / "truth.gpkg" and scene.existing is None
    gone = write(files / "gone.csv", "scene_id,image,existing\na,img/a.tif,nothere.gpkg\n")
    with pytest.raises(InputError) as exc:
        read_catalogue(gone)
    assert "existing" in one_line(exc) and "nothere.gpkg not found" in one_line(exc)


def test_tsv_without_truth_column_and_bom(files: Path) -> None:
    cat = files / "cat.tsv"
    cat.write_bytes("\ufeffscene_id\timage\na\timg/a.tif\n".encode())
    (scene,) = read_catalogue(cat)
    assert scene.scene_id == "a" and scene.truth is None


def test_sample_catalogue() -> None:
    scenes = read_catalogue(SAMPLE / "catalogue.csv")
    assert [s.scene_id for s in scenes] == ["kampala_a_z21", "kampala_b_z21"]
    assert all(s.image.is_file() for s in scenes)
    # area a trained the bundled model: only held-out area b is scored, so the summary's
    # total is a held-out figure
    assert scenes[0].truth is None and scenes[1].truth and scenes[1].truth.is_file()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("scene_id,truth\na,truth.gpkg\n", "lacks the column(s) image"),
        ("id,image\na,img/a.tif\n", "lacks the column(s) scene_id"),
        ("scene_id,image\n", "lists no scene"),
        ("", "is empty"),
        ("scene_id,image,image\na,img/a.tif,img/a.tif\n", "repeats the column(s) image"),
        ("scene_id,image\na,img/a.tif\nA,img/b.tif\n", "line 3: scene_id 'A' repeats line 2"),
        ("scene_id,image\n../x,img/a.tif\n", "line 2: scene_id '../x' is not a safe folder name"),
        ("scene_id,image\n..,img/a.tif\n", "scene_id '..' is not a safe"),
        ("scene_id,image\na/b,img/a.tif\n", "scene_id 'a/b' is not a safe"),
        ("scene_id,image\nmy scene,img/a.tif\n", "scene_id 'my scene' is not a safe"),
        ("scene_id,image\n,img/a.tif\n", "empty scene_id"),
        ("scene_id,image\na,\n", "empty image path"),
        ("scene_id,image\na,img/zz.tif\n", "line 2 (scene a): image"),
        ("scene_id,image,truth\na,img/a.tif,nope.gpkg\n", "truth"),
        ("scene_id,image\na,img/a.tif,extra\n", "3 fields for 2 columns"),
    ],
)
def test_invalid_catalogues_give_one_line_errors(files: Path, text: str, expected: str) -> None:
    cat = write(files / "cat.csv", text)
    with pytest.raises(InputError) as exc:
        read_catalogue(cat)
    assert expected in one_line(exc)
    assert str(cat) in str(exc.value)


def test_missing_image_names_the_path_and_counts_more_problems(files: Path) -> None:
    cat = write(files / "cat.csv", "scene_id,image\na,img/zz.tif\n../b,img/b.tif\n")
    with pytest.raises(InputError) as exc:
        read_catalogue(cat)
    message = one_line(exc)
    assert str(files / "img" / "zz.tif") in message and "not found" in message
    assert "and 1 more problem" in message
    # without the file check only the unsafe id remains
    with pytest.raises(InputError, match="not a safe"):
        read_catalogue(cat, check_files=False)


def test_missing_catalogue(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_catalogue(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="is a directory"):
        read_catalogue(tmp_path)


def stac_item(item_id: str, assets: dict[str, pystac.Asset]) -> pystac.Item:
    item = pystac.Item(
        item_id,
        geometry={"type": "Point", "coordinates": [32.59, 0.35]},
        bbox=[32.59, 0.35, 32.59, 0.35],
        datetime=None,
        properties={
            "start_datetime": "2022-01-01T00:00:00Z",
            "end_datetime": "2022-01-02T00:00:00Z",
        },
    )
    for key, asset in assets.items():
        item.add_asset(key, asset)
    return item


def test_stac_item_collection(files: Path) -> None:
    items = [
        stac_item(
            "a",
            {
                "image": pystac.Asset("img/a.tif", media_type=pystac.MediaType.GEOTIFF),
                "footprints": pystac.Asset("truth.gpkg", roles=["labels"]),
            },
        ),
        stac_item("b", {"ortho": pystac.Asset(str(files / "img/b.tif"), roles=["data"])}),
    ]
    path = files / "items.json"
    path.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    a, b = read_catalogue(path)
    assert (a.scene_id, a.image, a.truth) == ("a", files / "img" / "a.tif", files / "truth.gpkg")
    assert (b.scene_id, b.image, b.truth) == ("b", files / "img" / "b.tif", None)


def test_stac_catalog_with_relative_hrefs(files: Path) -> None:
    cat = pystac.Catalog("scenes", "test scenes")
    root = files / "stac"
    for name in ("a", "b"):
        item = stac_item(name, {"image": pystac.Asset(f"../../img/{name}.tif")})
        cat.add_item(item)
    cat.normalize_and_save(str(root), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    assert (root / "a" / "a.json").is_file()
    # hrefs resolve against each item's own file (stac/<id>/<id>.json), not the catalogue
    scenes = read_catalogue(root / "catalog.json")
    assert [s.scene_id for s in scenes] == ["a", "b"]
    assert scenes[0].image == files / "img" / "a.tif"


def test_stac_problems(files: Path) -> None:
    items = [
        stac_item("no-image", {"thumb": pystac.Asset("t.png", media_type=pystac.MediaType.PNG)}),
        stac_item("ftp", {"image": pystac.Asset("ftp://example.com/a.tif")}),
    ]
    path = files / "items.json"
    path.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    with pytest.raises(InputError) as exc:
        read_catalogue(path)
    message = one_line(exc)
    assert "item 1 ('no-image'): has no image asset" in message
    assert "1 more problem" in message
    path.write_text(json.dumps(pystac.ItemCollection(items[1:]).to_dict()))
    with pytest.raises(InputError, match="neither a local file nor an http"):
        read_catalogue(path)
    bad = write(files / "bad.json", "{not json")
    with pytest.raises(InputError, match="as JSON"):
        read_catalogue(bad)
    other = write(files / "other.json", json.dumps({"type": "Feature", "foo": 1}))
    with pytest.raises(InputError, match="STAC"):
        read_catalogue(other)


def test_remote_images_stay_urls(files: Path) -> None:
    """STAC assets and table cells that are URLs are read where they are, not resolved."""
    url = "https://example.com/oam/scene.tif"
    items = [stac_item("web", {"image": pystac.Asset(url)})]
    path = files / "items.json"
    path.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    (scene,) = read_catalogue(path)  # no existence check for URLs
    assert scene.image == url and isinstance(scene.image, str)
    table = write(files / "cat.csv", f"scene_id,image\nweb,{url}\nvsi,/vsis3/bucket/a.tif\n")
    assert [s.image for s in read_catalogue(table)] == [url, "/vsis3/bucket/a.tif"]
