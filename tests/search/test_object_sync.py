"""Index versions and checkpoints shared through a real S3 server (SeaweedFS), and the local disk left alone without it.

"Another machine" is the same process with another GEOSIM_INDEX_DIR / GEOSIM_MODEL_DIR: what it can
read, it can only have fetched from the bucket. tests/multihost/ runs the same on separate hosts.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from geosim_site.storage import media_storage
from search import object_sync
from tests.object_store import use_fresh_bucket
from vectorindex import (
    IndexCorruptError,
    IndexMissingError,
    Segment,
    VectorIndex,
    build_index,
    load,
    save_segment,
    saved_files,
)

pytestmark = pytest.mark.objectstore
PREFIX = "lab-a"


def _index(seed: int = 0, count: int = 50) -> tuple[VectorIndex, np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return build_index(np.arange(1, count + 1, dtype=np.int64), vectors), vectors


def _save(number: int, seed: int = 0):
    index, vectors = _index(seed)
    directory = object_sync.index_directory(number)
    index.save(directory, index_version=number, model_version="1")
    return directory, vectors


@pytest.fixture
def bucket(settings, object_store, monkeypatch):
    """GEOSIM_STORAGE_URL=s3://<a fresh bucket>/lab-a for this test; yields (client, bucket name)."""
    return use_fresh_bucket(object_store, settings, monkeypatch, PREFIX)


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _object_key(directory, file: str, number: int) -> str:
    """The bucket key of a published file (named by its content)."""
    return f"{PREFIX}/index/v{number:07d}/{_sha256(directory / file)}-{file}"


def _another_machine(settings, tmp_path, name: str) -> None:
    settings.GEOSIM_INDEX_DIR = tmp_path / name / "index"
    settings.GEOSIM_MODEL_DIR = tmp_path / name / "models"


def _keys(client, bucket: str, prefix: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/{prefix}")
    return sorted(entry["Key"][len(PREFIX) + 1 :] for entry in listed.get("Contents", []))


def test_a_published_version_is_read_identically_on_another_machine(settings, bucket, tmp_path):
    client, name = bucket
    directory, vectors = _save(7)
    object_sync.index_version_publish(7, directory)
    checksums = {path.name: _sha256(path) for path in saved_files(directory)}
    assert _keys(client, name, "index/") == sorted(
        ["index/v0000007/.published.json", *(f"index/v0000007/{sha}-{file}" for file, sha in checksums.items())]
    )
    assert (directory / object_sync.LISTING).exists(), "the writer's own copy counts as complete"

    _another_machine(settings, tmp_path, "web-b")
    fetched = object_sync.index_version_local(7, str(directory))
    assert fetched == object_sync.index_directory(7) and fetched != directory
    expected = VectorIndex.load(directory).search(vectors[:5], 3)
    found = VectorIndex.load(fetched).search(vectors[:5], 3)
    np.testing.assert_array_equal(found[1], expected[1])
    assert sorted(path.name for path in fetched.iterdir()) == [".published.json", "index.faiss", "manifest.json"]


def test_a_version_whose_listing_is_missing_is_never_read(settings, bucket, tmp_path):
    """An upload cut short (a worker killed before the listing) is not a version."""
    client, name = bucket
    directory, _ = _save(3)
    object_sync.index_version_publish(3, directory)
    client.delete_object(Bucket=name, Key=f"{PREFIX}/index/v0000003/{object_sync.LISTING}")
    _another_machine(settings, tmp_path, "web-b")
    with pytest.raises(IndexMissingError, match="not in the object store"):
        object_sync.index_version_local(3, str(directory))
    assert not object_sync.index_directory(3).exists()


def test_a_damaged_object_is_refused_and_nothing_is_kept(settings, bucket, tmp_path):
    client, name = bucket
    directory, _ = _save(4)
    object_sync.index_version_publish(4, directory)
    client.put_object(Bucket=name, Key=_object_key(directory, "index.faiss", 4), Body=b"not an index")
    _another_machine(settings, tmp_path, "web-b")
    with pytest.raises(IndexCorruptError, match="does not match its SHA-256"):
        object_sync.index_version_local(4, str(directory))
    parent = object_sync.index_directory(4).parent
    assert list(parent.iterdir()) == [], "no partial copy, no staging directory"


def test_a_stale_local_copy_under_the_same_number_is_replaced(settings, bucket, tmp_path):
    """A worker killed after uploading but before committing leaves a copy whose number is reused later."""
    _another_machine(settings, tmp_path, "worker-c")
    stale, _ = _save(5, seed=1)
    object_sync.index_version_publish(5, stale)  # the killed attempt (never committed)
    _another_machine(settings, tmp_path, "worker-d")
    fresh, vectors = _save(5, seed=2)
    object_sync.index_version_publish(5, fresh)  # the version that was committed
    _another_machine(settings, tmp_path, "worker-c")
    copy = object_sync.index_version_local(5, str(fresh))
    assert copy == stale  # the same path on worker C, now holding the committed version
    np.testing.assert_array_equal(
        VectorIndex.load(copy).search(vectors[:3], 1)[1], VectorIndex.load(fresh).search(vectors[:3], 1)[1]
    )


def test_files_a_local_copy_already_has_are_linked_not_downloaded(settings, bucket, tmp_path):
    """A version sharing files with one cached already (a base index beside new segments) costs only the new files."""
    client, name = bucket
    directory, _ = _save(8)
    object_sync.index_version_publish(8, directory)
    _another_machine(settings, tmp_path, "web-b")
    first = object_sync.index_version_local(8, str(directory))
    # Version 9 holds the same index file; a fetch that downloaded it would find the object gone.
    _another_machine(settings, tmp_path, "worker")
    second = object_sync.index_directory(9)
    second.mkdir(parents=True)
    for path in saved_files(directory):
        (second / path.name).write_bytes(path.read_bytes())
    object_sync.index_version_publish(9, second)
    client.delete_object(Bucket=name, Key=_object_key(second, "index.faiss", 9))
    _another_machine(settings, tmp_path, "web-b")
    linked = object_sync.index_version_local(9, str(second))
    assert (linked / "index.faiss").stat().st_ino == (first / "index.faiss").stat().st_ino


def test_an_unreachable_store_is_a_sync_failure_unless_a_complete_copy_is_here(settings, bucket, tmp_path, monkeypatch):
    directory, _ = _save(6)
    object_sync.index_version_publish(6, directory)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": media_storage("s3://nowhere/lab-a", endpoint_url="http://127.0.0.1:9"),  # nothing listens
    }
    assert object_sync.index_version_local(6, str(directory)) == directory  # the writer's complete copy
    _another_machine(settings, tmp_path, "web-b")
    with pytest.raises(object_sync.SyncFailed):
        object_sync.index_version_local(6, str(directory))


def test_prune_keeps_the_live_version_and_the_newest_older_ones(settings, bucket):
    settings.GEOSIM_INDEX_KEEP = 1
    for number in (1, 2, 3, 4):
        object_sync.index_directory(number).mkdir(parents=True)
    object_sync.index_versions_prune_local(3)
    assert sorted(p.name for p in object_sync.index_directory(1).parent.iterdir()) == [
        "v0000002",
        "v0000003",
        "v0000004",
    ]


def test_a_checkpoint_is_fetched_by_its_sha256_on_another_machine(settings, bucket, tmp_path, tiny_checkpoint):
    client, name = bucket
    sha = _sha256(tiny_checkpoint)
    object_sync.checkpoint_publish(tiny_checkpoint, sha)
    assert _keys(client, name, "models/") == [f"models/{sha}.pt"]
    _another_machine(settings, tmp_path, "web-b")
    local = object_sync.checkpoint_local("/elsewhere/on/another/machine.pt", sha)
    assert local.parent == settings.GEOSIM_MODEL_DIR and local.read_bytes() == tiny_checkpoint.read_bytes()
    with pytest.raises(object_sync.SyncFailed):
        object_sync.checkpoint_local("/elsewhere.pt", "0" * 64)


def test_on_the_local_disk_nothing_moves(settings, tmp_path):
    """The default: the recorded paths are read as they are and nothing else is written."""
    assert not object_sync.enabled()
    directory, _ = _save(2)
    object_sync.index_version_publish(2, directory)
    assert sorted(path.name for path in directory.iterdir()) == ["index.faiss", "manifest.json"]
    assert object_sync.index_version_local(2, "/recorded/path") == object_sync.index_version_path(2, "/recorded/path")
    assert str(object_sync.index_version_local(2, "/recorded/path")) == "/recorded/path"
    assert str(object_sync.checkpoint_local("/recorded/model.pt", "ab" * 32)) == "/recorded/model.pt"


def test_the_listing_records_every_file_with_its_checksum(bucket):
    client, name = bucket
    directory, _ = _save(11)
    object_sync.index_version_publish(11, directory)
    body = client.get_object(Bucket=name, Key=f"{PREFIX}/index/v0000011/{object_sync.LISTING}")["Body"].read()
    listing = json.loads(body)
    assert [entry["name"] for entry in listing["files"]] == ["index.faiss", "manifest.json"]
    for entry in listing["files"]:
        assert entry["size"] == (directory / entry["name"]).stat().st_size
        assert entry["sha256"] == _sha256(directory / entry["name"])


def test_a_segment_added_on_one_machine_reaches_another_as_its_new_files_only(settings, bucket, tmp_path):
    """An upload adds a segment beside the base: the machines that hold the base fetch just the segment."""
    _another_machine(settings, tmp_path, "worker-c")
    directory, _ = _save(12)
    object_sync.index_version_publish(12, directory)
    _another_machine(settings, tmp_path, "web-b")
    base_inode = (object_sync.index_version_local(12, str(directory)) / "index.faiss").stat().st_ino

    _another_machine(settings, tmp_path, "worker-c")
    first_manifest = _object_key(directory, "manifest.json", 12)
    added = np.ones((1, 16), dtype=np.float32) / 4.0
    save_segment(directory, load(directory), Segment.adding(np.array([1000], dtype=np.int64), added))
    object_sync.index_version_publish(12, directory)
    # Nothing the first listing names was overwritten: a publish cut short leaves the version as it was.
    client, name = bucket
    assert first_manifest[len(PREFIX) + 1 :] in _keys(client, name, "index/v0000012/")

    _another_machine(settings, tmp_path, "web-b")
    copy = object_sync.index_version_local(12, str(directory))
    assert (copy / "index.faiss").stat().st_ino == base_inode, "the base was linked, not downloaded again"
    assert load(copy, segments=1).search(added, 1)[1][0][0] == 1000
