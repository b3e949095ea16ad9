from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from shapely.geometry import Polygon, box

from geounet.errors import InputError
from geounet.footprints.vectorize import LAYER, split_bands, vectorize, write_footprints

RES = 0.5


def write_prob(
    path: Path, prob: np.ndarray, valid: np.ndarray | None = None, res: float = RES
) -> Path:
    h, w = prob.shape
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32636",
        "transform": from_origin(500000.0, 40000.0, res, res),
    }
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(np.rint(prob * 255).astype(np.uint8), 1)
        if valid is not None:
            dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
    return path


def known_mask() -> np.ndarray:
    prob = np.zeros((40, 50), dtype=np.float32)
    prob[2:12, 3:13] = 0.8  # 10 x 10 square
    prob[20:36, 5:11] = 1.0  # L-shape, vertical bar
    prob[30:36, 11:21] = 1.0  # L-shape, foot
    prob[5:25, 30:46] = 0.6  # square with a 4 x 4 hole
    prob[12:16, 36:40] = 0.0
    return prob


def test_known_mask_gives_known_polygons(tmp_path: Path) -> None:
    path = write_prob(tmp_path / "p.tif", known_mask())
    gdf = vectorize(path, threshold=0.5, min_area_m2=0.1, simplify_m=0)
    assert gdf.crs.to_epsg() == 32636
    assert list(gdf.columns) == ["id", "area_m2", "confidence", "geometry"]
    assert len(gdf) == 3
    by_area = gdf.sort_values("area_m2").reset_index(drop=True)
    px = RES * RES
    np.testing.assert_allclose(by_area.area_m2, [100 * px, 156 * px, 304 * px], rtol=2e-3)
    square = by_area.geometry[0]
    expected = box(500000 + 3 * RES, 40000 - 12 * RES, 500000 + 13 * RES, 40000 - 2 * RES)
    assert square.equals(expected)
    assert by_area.confidence[0] == pytest.approx(round(0.8 * 255) / 255, abs=1e-6)
    holed = by_area.geometry[2]
    assert len(holed.interiors) == 1
    assert gdf.id.tolist() == [1, 2, 3]


def test_small_holes_and_objects_dropped(tmp_path: Path) -> None:
    prob = known_mask()
    prob[0, 49] = 1.0  # a one-pixel speck
    path = write_prob(tmp_path / "p.tif", prob)
    gdf = vectorize(path, threshold=0.5, min_area_m2=5.0, simplify_m=0)
    # the 16-pixel hole (4 m2) is filled, the speck (0.25 m2) dropped, 25 m2 square kept
    assert len(gdf) == 3
    assert all(len(g.interiors) == 0 for g in gdf.geometry)


def test_simplification_tolerance_is_in_ground_metres(tmp_path: Path) -> None:
    prob = np.zeros((40, 40), dtype=np.float32)
    for i in range(30):
        prob[5 + i, 5 : 6 + i] = 1.0  # a right triangle with a pixel-staircase hypotenuse

    def outline(res: float, simplify_m: float) -> Polygon:
        """The footprint at pixel size ``res``, in pixel coordinates."""
        path = write_prob(tmp_path / f"p{res}.tif", prob, res=res)
        g = vectorize(path, 0.5, min_area_m2=0, simplify_m=simplify_m).geometry[0]
        to_px = [1 / res, 0, 0, -1 / res, -500000.0 / res, 40000.0 / res]
        return shapely.affinity.affine_transform(g, to_px)

    raw = outline(0.5, 0)
    for k in (0.5, 0.75, 2.0):  # a tolerance of k pixels, in metres, whatever the pixel size
        shapes = [outline(res, k * res) for res in (0.05, 0.149, 0.5)]
        for other in shapes[1:]:
            assert other.symmetric_difference(shapes[0]).area < 1e-6 * raw.area
    # the default (0.11 m) smooths the staircase at the bundled model's 0.149 m
    assert len(outline(0.149, 0.11).exterior.coords) < 6 < len(raw.exterior.coords)
    # one tolerance in metres smooths the staircase of fine pixels, not of coarse ones
    assert len(outline(0.05, 0.2).exterior.coords) < 6
    assert outline(0.5, 0.2).equals(raw)


@pytest.mark.parametrize(("block", "halo"), [(2, 1), (3, 2), (7, 256), (13, 5), (1000, 1)])
def test_blocks_give_the_same_footprints_as_one_pass(tmp_path: Path, block: int, halo: int) -> None:
    rng = np.random.default_rng(3)
    prob = (rng.random((60, 70)) > 0.45).astype(np.float32)
    path = write_prob(tmp_path / "p.tif", prob)
    one = vectorize(path, 0.5, min_area_m2=0, simplify_m=0, block=10_000)
    many = vectorize(path, 0.5, min_area_m2=0, simplify_m=0, block=block, halo=halo)
    assert len(one) == len(many)
    assert one.geometry.union_all().symmetric_difference(many.geometry.union_all()).area < 1e-6
    np.testing.assert_allclose(sorted(one.area_m2), sorted(many.area_m2), rtol=1e-9)


def test_nodata_is_never_a_building(tmp_path: Path) -> None:
    prob = np.ones((20, 20), dtype=np.float32)
    valid = np.zeros((20, 20), dtype=bool)
    valid[:, :10] = True
    path = write_prob(tmp_path / "p.tif", prob, valid)
    gdf = vectorize(path, 0.5, min_area_m2=0, simplify_m=0)
    assert len(gdf) == 1
    assert gdf.area_m2[0] == pytest.approx(200 * RES * RES, rel=2e-3)


def test_empty_raster_and_gpkg_round_trip(tmp_path: Path) -> None:
    path = write_prob(tmp_path / "p.tif", np.zeros((10, 10), dtype=np.float32))
    gdf = vectorize(path, 0.5)
    assert len(gdf) == 0
    out = tmp_path / "b.gpkg"
    write_footprints(gdf, out)
    back = gpd.read_file(out, layer=LAYER)
    assert len(back) == 0 and back.crs.to_epsg() == 32636
    full = vectorize(write_prob(tmp_path / "q.tif", known_mask()), 0.5, 0.1)
    write_footprints(full, out)
    back = gpd.read_file(out, layer=LAYER)
    assert len(back) == 3 and set(back.columns) >= {"id", "area_m2", "confidence"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_squared_roofs_cut_by_the_scene_edge_stay_inside_it(tmp_path: Path) -> None:
    # a slanted roof that the scene's left edge cuts: squaring restores its walls, which
    # would reach past the edge without the clip
    from rasterio.features import rasterize
    from shapely import affinity

    for angle in (10, 30):
        rect = affinity.rotate(box(-5, 10, 25, 26), angle, origin="centroid")
        mask = rasterize([rect], out_shape=(50, 50)).astype(np.float32)
        path = write_prob(tmp_path / f"p{angle}.tif", mask)
        reg = vectorize(path, 0.5, min_area_m2=1, simplify_m=0, regularize=True)
        with rasterio.open(path) as src:
            extent = box(*src.bounds)
        assert len(reg) == 1 and reg.geometry[0].geom_type == "Polygon"
        assert extent.covers(reg.geometry[0])
        assert reg.total_bounds[0] == pytest.approx(extent.bounds[0])  # cut at the edge


def test_regularize_squares_a_staircase_outline(tmp_path: Path) -> None:
    # a rotated rectangle rasterised: its outline is a staircase
    from rasterio.features import rasterize
    from shapely import affinity

    rect = affinity.rotate(box(10, 10, 40, 26), 20, origin="centroid")
    mask = rasterize([rect], out_shape=(50, 50)).astype(np.float32)
    path = write_prob(tmp_path / "p.tif", mask)
    raw = vectorize(path, 0.5, min_area_m2=1, simplify_m=0)
    reg = vectorize(path, 0.5, min_area_m2=1, simplify_m=0, regularize=True)
    assert len(raw) == len(reg) == 1
    ring = np.asarray(reg.geometry[0].exterior.coords)[:-1]
    assert len(ring) < len(raw.geometry[0].exterior.coords) / 4
    edges = np.diff(np.vstack([ring, ring[:1]]), axis=0)
    angles = np.degrees(np.arctan2(edges[:, 1], edges[:, 0]))
    rel = np.mod(angles - angles[0], 90)
    assert np.all(np.minimum(rel, 90 - rel) < 2), "edges meet at right angles"
    true = affinity.affine_transform(rect, [RES, 0, 0, -RES, 500000, 40000])
    assert reg.area_m2[0] == pytest.approx(true.area, rel=0.05)
    assert reg.geometry[0].intersection(true).area > 0.93 * true.area


def test_a_raster_in_degrees_is_squared_on_the_ground(tmp_path: Path) -> None:
    # at 60 degrees north a degree of longitude is half a degree of latitude on the
    # ground: squared in degrees, a roof at 30 degrees would come out a parallelogram
    from rasterio.features import rasterize
    from shapely import affinity

    from geounet.core.shape import right_angle_offsets

    utm = "EPSG:32633"  # 15 E, 60 N
    roof = affinity.rotate(box(500000, 6650000, 500016, 6650008), 30, origin="centroid")
    roof_ll = gpd.GeoSeries([roof], crs=utm).to_crs("EPSG:4326").iloc[0]
    step = 0.25 / 111_320  # square pixels in degrees: 0.25 m tall, 0.125 m wide here
    west, north = roof_ll.bounds[0] - 40 * step, roof_ll.bounds[3] + 40 * step
    transform = from_origin(west, north, step, step)
    mask = rasterize([roof_ll], out_shape=(130, 320), transform=transform)
    path = tmp_path / "p.tif"
    profile = {"driver": "GTiff", "height": 130, "width": 320, "count": 1, "dtype": "uint8",
               "crs": "EPSG:4326", "transform": transform}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write((mask * 230).astype(np.uint8), 1)
    out = vectorize(path, 0.5, min_area_m2=1, simplify_m=0, regularize=True)
    assert len(out) == 1 and out.crs.to_epsg() == 4326
    squared = out.to_crs(utm).geometry[0]
    assert right_angle_offsets(squared).max() < 1.0  # right angles in metres
    assert shapely.intersection(squared, roof).area > 0.9 * shapely.union(squared, roof).area


def write_two_band(path: Path, prob: np.ndarray, contact: np.ndarray) -> Path:
    h, w = prob.shape
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": 2, "dtype": "uint8",
        "crs": "EPSG:32636", "transform": from_origin(500000.0, 40000.0, RES, RES),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.rint(np.stack([prob, contact]) * 255).astype(np.uint8))
    return path


def touching_roofs() -> tuple[np.ndarray, np.ndarray]:
    """Two touching 12 x 12 squares with a contact line between them, and an L-shaped roof."""
    prob = np.zeros((40, 60), dtype=np.float32)
    contact = np.zeros_like(prob)
    prob[5:17, 5:29] = 0.9  # two squares side by side: columns 5..16 and 17..28
    contact[5:17, 16:18] = 0.9  # the model sees their common wall
    prob[22:36, 35:41] = 0.9  # L-shape: vertical bar ...
    prob[30:36, 41:55] = 0.9  # ... and foot, no contact inside
    return prob, contact


def test_squared_roofs_at_an_angle_touch_as_rectangles(tmp_path: Path) -> None:
    # two roofs 20 degrees apart, the model's contact band between them: squared, cut
    # apart and tidied (geounet.footprints.slivers), each is a rectangle again; the cut
    # alone left one a corner too many, two corners a hair's breadth apart
    from rasterio.features import rasterize
    from shapely import affinity

    from geounet.core.shape import corners

    a = box(10, 10, 40, 30)
    b = affinity.rotate(box(42, 5, 62, 36), 20, origin=(40, 20))
    prob = rasterize([a, b], out_shape=(60, 80)).astype(np.float32) * 0.9
    between = shapely.intersection(a.buffer(1.5), b.buffer(1.5))
    contact = rasterize([between], out_shape=(60, 80)).astype(np.float32) * 0.9
    path = write_two_band(tmp_path / "p.tif", prob, contact)
    out = vectorize(
        path, 0.5, min_area_m2=1, simplify_m=0, regularize=True, split=(path, {"contact": 2})
    )
    assert [corners(g) for g in out.geometry] == [4, 4]
    first, second = out.geometry
    assert shapely.intersection(first, second).area < 1e-9
    assert shapely.distance(first, second) < 1e-6


def test_watershed_splits_touching_roofs_only_at_contacts(tmp_path: Path) -> None:
    prob, contact = touching_roofs()
    prob_path = write_prob(tmp_path / "p.tif", prob)
    aux = write_two_band(tmp_path / "aux.tif", prob, contact)
    merged = vectorize(prob_path, 0.5, min_area_m2=1, simplify_m=0)
    split = vectorize(prob_path, 0.5, min_area_m2=1, simplify_m=0, split=(aux, {"contact": 2}))
    assert len(merged) == 2, "connectivity alone merges the two squares"
    assert len(split) == 3, "the contact channel separates them; the L stays whole"
    areas = sorted(split.area_m2 / (RES * RES))
    np.testing.assert_allclose(areas, [144, 144, 84 + 84], rtol=0.05)
    squares = split[split.area_m2 < 50].geometry
    assert squares.iloc[0].intersection(squares.iloc[1]).area == 0


@pytest.mark.parametrize(("block", "halo"), [(4, 2), (9, 3), (17, 64)])
def test_watershed_blocks_equal_one_pass(tmp_path: Path, block: int, halo: int) -> None:
    prob, contact = touching_roofs()
    prob_path = write_prob(tmp_path / "p.tif", prob)
    aux = write_two_band(tmp_path / "aux.tif", prob, contact)
    kw = {"min_area_m2": 1, "simplify_m": 0, "split": (aux, {"contact": 2})}
    one = vectorize(prob_path, 0.5, block=1000, **kw)  # type: ignore[arg-type]
    many = vectorize(prob_path, 0.5, block=block, halo=halo, **kw)  # type: ignore[arg-type]
    assert len(one) == len(many) == 3
    for a, b in zip(one.geometry, many.geometry, strict=True):
        assert a.symmetric_difference(b).area < 1e-6


def bodies_of_touching_roofs() -> tuple[np.ndarray, np.ndarray]:
    """The roofs of ``touching_roofs`` with the body a model would see: the two squares'
    interiors apart, the L's interior in one piece."""
    from geounet.train.weights import body_map

    prob, _ = touching_roofs()
    inst = np.zeros(prob.shape, dtype=np.int64)
    inst[5:17, 5:17], inst[5:17, 17:29] = 1, 2
    inst[prob > 0] = np.where(inst[prob > 0] > 0, inst[prob > 0], 3)
    return prob, body_map(inst, erosion=2.0) * 0.9


def test_watershed_grows_one_footprint_per_body(tmp_path: Path) -> None:
    prob, body = bodies_of_touching_roofs()
    prob_path = write_prob(tmp_path / "p.tif", prob)
    aux = write_two_band(tmp_path / "aux.tif", prob, body)
    split = vectorize(prob_path, 0.5, min_area_m2=1, simplify_m=0, split=(aux, {"body": 2}))
    assert len(split) == 3, "two bodies split the squares; the L has one body and stays whole"
    areas = sorted(split.area_m2 / (RES * RES))
    np.testing.assert_allclose(areas, [144, 144, 84 + 84], rtol=0.05)
    assert split.union_all().area == pytest.approx(vectorize(prob_path, 0.5, min_area_m2=1,
        simplify_m=0).union_all().area)  # fmt: skip


def test_split_bands_reads_channel_names(tmp_path: Path) -> None:
    prob, body = bodies_of_touching_roofs()
    aux = write_two_band(tmp_path / "aux.tif", prob, body)
    with rasterio.open(aux, "r+") as dst:
        dst.set_band_description(2, "body probability")
    assert split_bands(aux) == {"body": 2}
    bare = write_prob(tmp_path / "p.tif", prob)
    with pytest.raises(InputError, match="no body or contact band"):
        split_bands(bare)


def test_split_per_component_equals_one_watershed_over_the_window() -> None:
    """Splitting each multi-seed component alone gives the partition of one watershed
    over the whole window (the flood never crosses background), orphans kept whole."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    from geounet.core.instances import label_instances

    rng = np.random.default_rng(7)
    prob = ndimage.gaussian_filter(rng.random((120, 150)), 2).astype(np.float32)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    body = ndimage.gaussian_filter(rng.random(prob.shape), 2).astype(np.float32)
    body = (body - body.min()) / (body.max() - body.min())
    valid = np.ones(prob.shape, dtype=bool)
    valid[:, :9] = False
    labels, n = label_instances(prob, valid, 0.5, body=body, body_threshold=0.6)

    mask = (prob >= 0.5) & valid
    seeds, _ = ndimage.label(mask & (body >= 0.6))
    sizes = np.bincount(seeds.ravel())
    seeds[sizes[seeds] < 4] = 0
    whole = watershed(-prob, markers=seeds, mask=mask, connectivity=1)
    orphans, _ = ndimage.label(mask & (whole == 0))
    whole[orphans > 0] = orphans[orphans > 0] + whole.max()

    assert n > ndimage.label(mask)[1] > 3, "some components are split"
    assert np.array_equal(labels > 0, mask)
    pairs = np.unique(np.stack([labels[mask], whole[mask]]), axis=1)
    assert pairs.shape[1] == n == len(np.unique(whole[mask])), "the same partition"


def test_regularize_squares_at_the_models_pixel_on_a_finer_raster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a 30 x 20 m roof with a 3 x 1.5 m porch: squared at 0.5 m pixels (5.5 px = 2.75 m)
    # the porch goes; a 0.25 m raster resampled from a 0.5 m model holds no finer detail
    # and must be squared the same way, not at half the tolerance
    from functools import partial

    from rasterio.features import rasterize

    from geounet.footprints import vectorize as module

    one = partial(module.regularize_footprints, tolerances_px=(5.5,), fit=0.0)
    monkeypatch.setattr(module, "regularize_footprints", one)  # one tolerance, in pixels

    roof = box(500005, 39975, 500035, 39995).union(box(500018, 39995, 500021, 39996.5))

    def corners(res: float, model_pixel_m: float | None) -> tuple[int, float]:
        n = int(50 / res)
        transform = from_origin(500000.0, 40000.0, res, res)
        mask = rasterize([roof], out_shape=(n, n), transform=transform).astype(np.float32)
        path = write_prob(tmp_path / f"p{res}_{model_pixel_m}.tif", mask, res=res)
        reg = vectorize(
            path, 0.5, min_area_m2=1, simplify_m=0, regularize=True, model_pixel_m=model_pixel_m
        )
        assert len(reg) == 1
        return len(reg.geometry[0].exterior.coords) - 1, float(reg.area_m2[0])

    coarse, coarse_area = corners(0.5, None)
    assert coarse == 4
    assert corners(0.25, 0.5) == (coarse, pytest.approx(coarse_area, rel=0.01))
    assert corners(0.25, None)[0] > coarse, "at the raster's own pixel the porch stays"
    assert corners(0.5, 0.25)[0] == coarse, "a coarser raster keeps its own pixel"


def test_a_seed_under_the_smallest_seed_area_starts_no_footprint(tmp_path: Path) -> None:
    prob, body = bodies_of_touching_roofs()  # each square's body: 16 m2 at body >= 0.3
    prob_path = write_prob(tmp_path / "p.tif", prob)
    aux = write_two_band(tmp_path / "aux.tif", prob, body)
    kw = {"min_area_m2": 1, "simplify_m": 0, "split": (aux, {"body": 2}), "body_threshold": 0.3}
    apart = vectorize(prob_path, 0.5, seed_area_m2=15, **kw)  # type: ignore[arg-type]
    joined = vectorize(prob_path, 0.5, seed_area_m2=20, **kw)  # type: ignore[arg-type]
    assert sorted(apart.area_m2) == pytest.approx([36, 36, 42])
    # the squares' seeds are too small to split them: one footprint, the L untouched
    assert sorted(joined.area_m2) == pytest.approx([42, 72])
    assert joined.union_all().area == pytest.approx(apart.union_all().area)


def test_footprints_fainter_than_the_smallest_confidence_are_dropped(tmp_path: Path) -> None:
    prob = known_mask()  # confidences 0.8 (square), 1.0 (L) and 0.6 (holed square)
    path = write_prob(tmp_path / "p.tif", prob)
    every = vectorize(path, threshold=0.5, min_area_m2=0.1, simplify_m=0)
    kept = vectorize(path, threshold=0.5, min_area_m2=0.1, simplify_m=0, min_confidence=0.7)
    assert sorted(every.confidence.round(2)) == [0.6, 0.8, 1.0]
    assert sorted(kept.confidence.round(2)) == [0.8, 1.0]
    # the others are untouched, and numbered afresh
    assert sorted(kept.area_m2) == pytest.approx(sorted(every.area_m2)[:2])
    assert kept.id.tolist() == [1, 2]
