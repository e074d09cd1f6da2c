"""Procedural demo textures: shape, determinism, variety, class separability, files on disk, the command."""

import importlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.demo_textures import ROCK_TYPES, generate_texture, write_demo_dataset


def _pixels(rock_type: str, seed: int, size: int = 28) -> np.ndarray:
    return np.asarray(generate_texture(rock_type, np.random.default_rng(seed), size), dtype=np.float32)


def _features(image: np.ndarray, bins: int = 6) -> np.ndarray:
    """Per-channel mean and std, mean gradient strength and a gradient-orientation histogram.

    The histogram is sorted, strongest bin first: the textures are drawn at random angles, so what tells
    classes apart is how strongly oriented they are, not which way.
    """
    grey = image.mean(axis=2)
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    orientation = np.mod(np.arctan2(gy, gx), np.pi)
    histogram, _ = np.histogram(orientation, bins=bins, range=(0, np.pi), weights=magnitude)
    histogram = np.sort(histogram)[::-1] / max(histogram.sum(), 1e-9)
    colour = np.concatenate([image.mean(axis=(0, 1)), image.std(axis=(0, 1))]) / 255
    return np.concatenate([colour, [magnitude.mean() / 255], histogram])


@pytest.mark.parametrize("size", [28, 64])
@pytest.mark.parametrize("rock_type", ROCK_TYPES)
def test_every_rock_type_gives_an_rgb_image_of_the_requested_size(rock_type, size):
    image = generate_texture(rock_type, np.random.default_rng(0), size)
    assert image.mode == "RGB"
    assert image.size == (size, size)
    assert np.asarray(image).std() > 5, "a texture should not be a flat colour"


def test_rock_types_are_the_six_classes_of_the_real_dataset():
    assert ROCK_TYPES == ("andesite", "gneiss", "marble", "quartzite", "rhyolite", "schist")


def test_unknown_rock_type_raises_naming_the_valid_ones():
    with pytest.raises(ValueError, match="granite") as raised:
        generate_texture("granite", np.random.default_rng(0))
    for rock_type in ROCK_TYPES:
        assert rock_type in str(raised.value)


@pytest.mark.parametrize("size", [0, 4, 5000, 28.0])
def test_unusable_size_raises(size):
    with pytest.raises(ValueError, match="size"):
        generate_texture("marble", np.random.default_rng(0), size)


@pytest.mark.parametrize("rock_type", ROCK_TYPES)
def test_same_seed_gives_the_same_pixels_and_another_seed_different_ones(rock_type):
    assert np.array_equal(_pixels(rock_type, 7), _pixels(rock_type, 7))
    assert not np.array_equal(_pixels(rock_type, 7), _pixels(rock_type, 8))


@pytest.mark.parametrize("rock_type", ROCK_TYPES)
def test_images_within_a_class_are_clearly_different(rock_type):
    rng = np.random.default_rng(3)
    images = np.stack([np.asarray(generate_texture(rock_type, rng), dtype=np.float32) for _ in range(12)])
    flat = images.reshape(len(images), -1)
    distances = np.abs(flat[:, None, :] - flat[None, :, :]).mean(axis=-1)
    off_diagonal = distances[~np.eye(len(images), dtype=bool)]
    assert off_diagonal.min() > 5, "two images of one class are near-duplicates (mean abs difference ≤ 5/255)"


def test_classes_are_separable_by_a_nearest_centroid_classifier_on_simple_features():
    def dataset(first_seed: int, per_class: int) -> tuple[np.ndarray, np.ndarray]:
        features, labels = [], []
        for label, rock_type in enumerate(ROCK_TYPES):
            for seed in range(first_seed, first_seed + per_class):
                features.append(_features(_pixels(rock_type, seed)))
                labels.append(label)
        return np.array(features), np.array(labels)

    train_x, train_y = dataset(first_seed=0, per_class=60)
    test_x, test_y = dataset(first_seed=10_000, per_class=40)
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-9
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    centroids = np.stack([train_x[train_y == label].mean(axis=0) for label in range(len(ROCK_TYPES))])
    predicted = np.argmin(((test_x[:, None, :] - centroids[None]) ** 2).sum(axis=-1), axis=1)
    accuracy = (predicted == test_y).mean()
    assert accuracy >= 0.9, f"nearest-centroid accuracy {accuracy:.3f} on held-out textures"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_write_demo_dataset_writes_the_class_folders_images_and_readme(tmp_path):
    written = write_demo_dataset(tmp_path, per_class=4, size=32, seed=1, progress=False)

    assert written == 4 * len(ROCK_TYPES)
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_dir()) == sorted(ROCK_TYPES)
    for rock_type in ROCK_TYPES:
        names = sorted(path.name for path in (tmp_path / rock_type).iterdir())
        assert names == [f"demo_{rock_type}_{index:04d}.jpg" for index in range(4)]
        with Image.open(tmp_path / rock_type / names[0]) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (32, 32))
    readme = (tmp_path / "README.txt").read_text(encoding="utf-8").lower()
    assert "generated" in readme
    assert "not photographs of real rocks" in readme


def test_write_demo_dataset_is_byte_for_byte_deterministic_for_a_seed(tmp_path):
    write_demo_dataset(tmp_path / "a", per_class=3, seed=5, progress=False)
    write_demo_dataset(tmp_path / "b", per_class=3, seed=5, progress=False)
    write_demo_dataset(tmp_path / "c", per_class=3, seed=6, progress=False)

    first, again, other = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert first == again
    images = [name for name in first if name.endswith(".jpg")]
    assert len(images) == 3 * len(ROCK_TYPES)
    assert all(first[name] != other[name] for name in images)


def test_more_images_per_class_keeps_the_first_ones_unchanged(tmp_path):
    write_demo_dataset(tmp_path / "small", per_class=2, progress=False)
    write_demo_dataset(tmp_path / "large", per_class=5, progress=False)

    small, large = _tree(tmp_path / "small"), _tree(tmp_path / "large")
    images = [name for name in small if name.endswith(".jpg")]
    assert all(small[name] == large[name] for name in images)


@pytest.mark.parametrize(("argument", "value"), [("per_class", 0), ("seed", -1), ("size", 2)])
def test_write_demo_dataset_refuses_bad_arguments_before_writing(tmp_path, argument, value):
    with pytest.raises(ValueError, match=argument):
        write_demo_dataset(tmp_path / "out", progress=False, **{argument: value})
    assert not (tmp_path / "out").exists()


@pytest.fixture
def django_ready():
    """Set Django up with the project's settings, or skip where they cannot be imported yet."""
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "geosim_site.settings")
    try:
        importlib.import_module(module)
    except Exception as error:  # any failure to import settings means "no Django here"
        pytest.skip(f"Django settings {module} cannot be imported: {error}")
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", module)
    django.setup()


def test_generate_demo_images_command_writes_the_dataset_and_a_summary(django_ready, tmp_path, capsys):
    from django.core.management import call_command

    call_command("generate_demo_images", str(tmp_path), "--per-class", "3", "--size", "24", "--seed", "2")

    assert len(list(tmp_path.glob("*/demo_*.jpg"))) == 3 * len(ROCK_TYPES)
    assert "Wrote 18 generated demo images" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--per-class", "0"], "--per-class"), (["--size", "3"], "--size"), (["--seed", "-4"], "--seed")],
)
def test_generate_demo_images_command_rejects_bad_arguments(django_ready, tmp_path, arguments, message):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message):
        call_command("generate_demo_images", str(tmp_path / "out"), *arguments)
    assert not (tmp_path / "out").exists()


# Large development textures (pixel-scale grains, foliation, veins) --------------------------------------

from search.demo_textures import TEXTURE_CLASSES, generate_large_texture, write_texture_collection  # noqa: E402


@pytest.mark.parametrize("texture_class", TEXTURE_CLASSES)
def test_large_texture_has_the_requested_short_side_and_is_deterministic(texture_class):
    image = generate_large_texture(texture_class, np.random.default_rng(5), 300, max_aspect=1.4)
    assert image.mode == "RGB" and min(image.size) == 300 and max(image.size) <= 420
    again = generate_large_texture(texture_class, np.random.default_rng(5), 300, max_aspect=1.4)
    assert np.array_equal(np.asarray(image), np.asarray(again))
    assert np.asarray(image).std() > 5


def test_texture_collection_writes_labelled_pngs_deterministically(tmp_path):
    count = write_texture_collection(tmp_path / "a", classes=3, per_class=2, size=64, seed=4, grey=True)
    write_texture_collection(tmp_path / "b", classes=3, per_class=2, size=64, seed=4, grey=True, prefix="x_")
    files = sorted((tmp_path / "a").rglob("*.png"))
    assert count == len(files) == 6
    assert sorted({path.parent.name for path in files}) == sorted(TEXTURE_CLASSES[:3])
    for path in files:
        twin = tmp_path / "b" / path.parent.name / f"x_{path.name}"
        assert path.read_bytes() == twin.read_bytes()
        with Image.open(path) as image:
            assert image.mode == "L" and min(image.size) == 64


def test_texture_scale_tells_fine_from_coarse_grains():
    """Grain size is drawn in pixels: the fine class has many more grain edges per pixel than the coarse."""

    def edge_density(texture_class: str) -> float:
        grey = np.asarray(generate_large_texture(texture_class, np.random.default_rng(0), 256, 1.0), np.float32)
        return float(np.abs(np.diff(grey.mean(axis=2), axis=1)).mean())

    assert edge_density("fine_granular") > 1.5 * edge_density("coarse_granular")


@pytest.mark.parametrize("kwargs", [{"classes": 1}, {"classes": 9}, {"per_class": 0}, {"size": 4}])
def test_texture_collection_refuses_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        write_texture_collection(tmp_path, **{"classes": 3, "per_class": 1, "size": 64, **kwargs})
