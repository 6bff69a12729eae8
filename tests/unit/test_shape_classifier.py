"""The reader's fitted shape classifier: patches, fitting, saving and loading."""

import pytest
import torch
from safetensors.torch import save_file

from goldennoise.shapes import ObjectSpec, Placement, PromptSpec, Scene, render_scene, render_scenes, sample_scenes
from goldennoise.shapes.calibration import CLASSES, labelled_patches
from goldennoise.shapes.reader import object_patches
from goldennoise.shapes.shape_classifier import (
    CLASSIFIER_DIR,
    HARMONICS,
    ShapeClassifier,
    fit_shape_classifier,
    load_shape_classifier,
    moment_features,
    save_shape_classifier,
)


def one_object(shape, x, y, color="red", size=0.3):
    return Scene(PromptSpec((ObjectSpec(color, shape),), position="center"), (Placement(x, y, size),))


@pytest.fixture(scope="module")
def render_patches():
    scenes = sample_scenes(range(60), "train")
    return labelled_patches(render_scenes(scenes), scenes, "render")


def test_patches_are_centered_on_the_object():
    near, far = (render_scene(one_object("triangle", x, 0.5))[None] for x in (0.4, 0.4 + 3 / 32))
    (patch_near,), (patch_far,) = ([*found.values()] for found in object_patches(torch.cat([near, far])))
    assert patch_near.shape == (24, 24)
    assert torch.allclose(patch_near, patch_far, atol=1e-5)  # a whole-pixel shift leaves the patch unchanged
    line = torch.arange(24) - 11.5
    centroid = [float((patch_near * offsets).sum() / patch_near.sum()) for offsets in (line[None, :], line[:, None])]
    assert centroid == pytest.approx([0.0, 0.0], abs=0.1)  # in patch samples


def test_object_patches_give_one_patch_per_color():
    scene = sample_scenes([1], "test")[0]
    two = next(s for s in sample_scenes(range(20), "test") if len(s.spec.objects) == 2)
    found = object_patches(render_scenes([scene, two]))
    assert set(found[1]) == {obj.color for obj in two.spec.objects}
    assert len(found[0]) == len(scene.spec.objects)


def test_fitted_classifier_reads_new_renders(render_patches):
    patches, labels = render_patches
    classifier = fit_shape_classifier(patches, labels, CLASSES, steps=100)
    scenes = sample_scenes(range(1000, 1040), "test")
    test_patches, test_labels = labelled_patches(render_scenes(scenes), scenes, "render")
    assert classifier.shape_indices(test_patches) == (test_labels % 4).tolist()


def test_saved_classifier_loads_with_its_settings(render_patches, tmp_path):
    patches, labels = render_patches
    classifier = fit_shape_classifier(patches, labels, CLASSES, pool=3, hidden=4, steps=5, description="a test fit")
    save_shape_classifier(classifier, tmp_path / "mine.safetensors")
    loaded = load_shape_classifier(str(tmp_path / "mine.safetensors"))
    assert (loaded.classes, loaded.pool, loaded.hidden, loaded.extent, loaded.description) == (
        CLASSES, 3, 4, 7.0, "a test fit")
    assert torch.allclose(loaded.feature_std, classifier.feature_std, rtol=1e-3)  # stored as float16
    with torch.no_grad():
        assert loaded(patches).argmax(dim=1).tolist() == classifier(patches).argmax(dim=1).tolist()


def test_shipped_classifier_knows_render_and_decoded_forms_and_is_small():
    classifier = load_shape_classifier("shapes-vae")
    assert set(classifier.classes) == set(CLASSES) and "train scenes" in classifier.description
    assert (CLASSIFIER_DIR / "shapes-vae.safetensors").stat().st_size < 8_000


def test_moment_features_tell_a_square_from_a_diamond():
    # the 4-fold harmonic <r² cos 4θ> / R² (column 9): mass on the diagonals (square) < 0 < mass on the axes (diamond)
    line = torch.arange(24) - 11.5
    y, x = torch.meshgrid(line, line, indexing="ij")
    square = ((x.abs() <= 5) & (y.abs() <= 5)).float()
    diamond = (x.abs() + y.abs() <= 7).float()
    circle = (x.square() + y.square() <= 36).float()
    four_fold = moment_features(torch.stack([square, diamond, circle]), extent=7.0)[:, 5 + 2 * HARMONICS.index(4)]
    assert four_fold[0] < -0.1 and four_fold[1] > 0.1 and abs(four_fold[2]) < 0.02


@pytest.mark.parametrize("name, error, message", [
    ("no-such-reader", FileNotFoundError, "shipped: .*shapes-vae"),
    ("missing.safetensors", FileNotFoundError, "missing.safetensors"),
])
def test_unknown_classifier_is_named(name, error, message):
    with pytest.raises(error, match=message):
        load_shape_classifier(name)


def test_a_file_without_settings_is_named(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file({"net.weight": torch.zeros(8, 157), "net.bias": torch.zeros(8)}, str(path))
    with pytest.raises(ValueError, match="bare.safetensors has no classifier settings"):
        load_shape_classifier(str(path))


def test_bad_classes_and_patches_are_named():
    with pytest.raises(ValueError, match="over \\['circle'"):
        ShapeClassifier([("hexagon", "render")])
    with pytest.raises(ValueError, match="multiple of pool"):
        ShapeClassifier(CLASSES, patch_size=24, pool=5)
    with pytest.raises(ValueError, match="square patches"):
        fit_shape_classifier(torch.zeros(4, 24, 20), torch.zeros(4), CLASSES)
