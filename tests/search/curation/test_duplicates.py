"""Near-duplicates: the job groups copies of an image with it, reviews persist, the API and page, uploads."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image as PILImage
from PIL import ImageEnhance

from search.models import DistinctPair, DuplicateGroup, Image, ImageFingerprint, Job
from search.services.duplicates import (
    ReviewRejected,
    UnknownGroup,
    close_pairs,
    connected_groups,
    duplicates_request,
    group_resolve,
    open_groups,
)
from search.services.ingestion import image_ingest
from tests.conftest import REPO_ROOT, image_bytes
from tests.search.api.conftest import IMAGES_URL, WRITE_DENIED, assert_error, upload

DUPLICATES_URL = "/api/v1/duplicates/"


def _reencoded(data: bytes, *, fmt: str = "PNG", quality: int = 90, scale: float = 1.0, crop: int = 0, light=1.0):
    """Another file of the same picture: re-encoded, optionally resized, cropped by ``crop`` px, brightened."""
    picture = PILImage.open(io.BytesIO(data)).convert("RGB")
    if crop:
        picture = picture.crop((crop, crop, picture.width, picture.height))
    if scale != 1.0:
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), PILImage.BICUBIC)
    if light != 1.0:
        picture = ImageEnhance.Brightness(picture).enhance(light)
    out = io.BytesIO()
    picture.save(out, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return out.getvalue()


def _add(data: bytes, label: str = "gneiss") -> Image:
    image, created = image_ingest(data=data, label=label, original_name="x.jpg")
    assert created
    return image


def _groups() -> list[set[int]]:
    return [{m.image_id for m in group.members.all()} for group in open_groups()]


def _find() -> Job:
    job = duplicates_request()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    return job


# -- the rule's parts, against plain computations ---------------------------------------------------------


def test_close_pairs_are_exactly_the_pairs_above_the_threshold():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    first, second, scores = close_pairs(vectors, 0.8)
    gram = vectors @ vectors.T
    expected = {(i, j) for i in range(300) for j in range(i + 1, 300) if gram[i, j] >= 0.8}
    assert set(zip(first.tolist(), second.tolist(), strict=True)) == expected
    assert scores == pytest.approx([gram[i, j] for i, j in zip(first, second, strict=True)], abs=1e-5)


def test_connected_groups_join_chains_and_keep_islands_apart():
    assert connected_groups([(1, 2), (2, 3), (7, 8), (9, 3)]) == [[1, 2, 3, 9], [7, 8]]


# -- the job ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_copies_are_grouped_with_their_original_and_unrelated_images_are_not():
    original = image_bytes(seed=1)
    images = [_add(original), _add(image_bytes(seed=2)), _add(image_bytes(seed=3))]
    copies = [
        _add(_reencoded(original, fmt="JPEG", quality=95)),
        _add(_reencoded(original, fmt="PNG", scale=2.0)),
        _add(_reencoded(original, fmt="PNG", light=1.1)),
    ]
    job = _find()
    assert _groups() == [{images[0].pk, *(c.pk for c in copies)}]
    assert job.result["groups"] == 1 and job.result["images"] == 4


@pytest.mark.realdata
@pytest.mark.django_db(transaction=True)
def test_real_copies_are_grouped_with_their_original_by_the_shipped_model(settings, real_images_dir):
    """Real 28×28 rocks and the shipped model: re-encoded, resized and cropped copies join their original."""
    settings.GEOSIM_DEFAULT_CHECKPOINT = REPO_ROOT / "training" / "weights" / "default.pt"
    folders = sorted(p for p in real_images_dir.iterdir() if p.is_dir())
    originals = {}
    for folder in folders:
        for path in sorted(folder.glob("*.jpg"))[:4]:  # same-type neighbours: the hard negatives
            originals[path] = _add(path.read_bytes(), label=folder.name)
    copied_path = sorted(folders[0].glob("*.jpg"))[0]
    data = copied_path.read_bytes()
    copies = [
        _add(_reencoded(data, fmt="JPEG", quality=40)),
        _add(_reencoded(data, fmt="PNG", scale=2.0)),
        _add(_reencoded(data, fmt="PNG", crop=1)),
    ]
    _find()
    original = originals[copied_path]
    group = next(g for g in _groups() if original.pk in g)
    assert {c.pk for c in copies} <= group
    unrelated = {image.pk for path, image in originals.items() if path != copied_path}
    assert not group & unrelated


@pytest.mark.django_db(transaction=True)
def test_review_decisions_persist_across_a_new_job(django_user_model):
    curator = django_user_model.objects.create_user("curator", is_staff=True)
    a, b = image_bytes(seed=11), image_bytes(seed=12)
    a1, a2 = _add(a), _add(_reencoded(a))
    b1, b2, b3 = _add(b), _add(_reencoded(b, fmt="JPEG", quality=97)), _add(_reencoded(b, scale=2.0))
    _find()
    groups = {min(g): g for g in _groups()}
    assert groups == {a1.pk: {a1.pk, a2.pk}, b1.pk: {b1.pk, b2.pk, b3.pk}}
    by_first = {min(m.image_id for m in g.members.all()): g for g in open_groups()}
    group_resolve(by_first[a1.pk].pk, action="keep_all", user=curator)
    group_resolve(by_first[b1.pk].pk, action="delete_selected", delete=[b3.pk], user=curator)

    assert not Image.objects.filter(pk=b3.pk).exists()
    assert DistinctPair.objects.filter(first=a1, second=a2, decided_by=curator).exists()
    _find()
    assert _groups() == []  # nothing decided comes back
    assert DuplicateGroup.objects.filter(status=DuplicateGroup.Status.RESOLVED).count() == 2

    a3 = _add(_reencoded(a, fmt="JPEG", quality=98))  # a new copy: its pairs are new, so it is asked about
    _find()
    assert _groups() == [{a1.pk, a2.pk, a3.pk}]


@pytest.mark.django_db(transaction=True)
def test_keep_one_deletes_the_others_and_an_unchanged_group_keeps_its_id():
    a = image_bytes(seed=21)
    a1, a2, a3 = _add(a), _add(_reencoded(a)), _add(_reencoded(a, fmt="JPEG", quality=96))
    _find()
    first = open_groups().get()
    _find()
    assert open_groups().get().pk == first.pk
    group_resolve(first.pk, action="keep_one", keep=a2.pk)
    assert set(Image.objects.values_list("pk", flat=True)) == {a2.pk}
    assert a1.pk not in ImageFingerprint.objects.values_list("image_id", flat=True)
    assert a3.pk  # deleted with the others


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "decision, field",
    [
        ({"action": "merge"}, "action"),
        ({"action": "keep_one"}, "keep"),
        ({"action": "keep_one", "keep": 10**9}, "keep"),
        ({"action": "delete_selected"}, "delete"),
        ({"action": "delete_selected", "delete": [10**9]}, "delete"),
        ({"action": "delete_selected", "delete": "all"}, "delete"),
    ],
)
def test_a_bad_decision_changes_nothing(decision, field):
    a = image_bytes(seed=31)
    images = [_add(a), _add(_reencoded(a))]
    _find()
    group = open_groups().get()
    if decision.get("delete") == "all":
        decision = {**decision, "delete": [i.pk for i in images]}
    with pytest.raises(ReviewRejected) as caught:
        group_resolve(group.pk, **decision)
    assert caught.value.field == field
    assert Image.objects.count() == 2 and not DistinctPair.objects.exists()
    assert open_groups().get().pk == group.pk
    with pytest.raises(UnknownGroup):
        group_resolve(group.pk + 1000, action="keep_all")


# -- the API ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["anonymous", "user", "user_token"])
def test_only_staff_may_list_or_resolve(callers, who):
    assert_error(callers[who].get(DUPLICATES_URL), WRITE_DENIED[who])
    assert_error(callers[who].post(f"{DUPLICATES_URL}1/resolve/", {"action": "keep_all"}), WRITE_DENIED[who])
    assert_error(callers[who].post(f"{DUPLICATES_URL}find/"), WRITE_DENIED[who])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["staff", "staff_token"])
def test_staff_list_open_groups_paginated_and_resolve_them(callers, who):
    pairs = []
    for seed in (41, 42, 43):
        data = image_bytes(seed=seed)
        pairs.append((_add(data), _add(_reencoded(data))))
    started = callers[who].post(f"{DUPLICATES_URL}find/")
    assert started.status_code == 202 and Job.objects.get(pk=started.json()["job"]).status == Job.Status.SUCCEEDED

    page = callers[who].get(DUPLICATES_URL, {"page_size": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    group = page["results"][0]
    assert {m["id"] for m in group["images"]} == {pairs[0][0].pk, pairs[0][1].pk}
    assert group["status"] == "open" and group["images"][0]["display_url"].startswith("http")
    assert group["images"][0]["correlation"] >= 0.9

    resolved = callers[who].post(
        f"{DUPLICATES_URL}{group['id']}/resolve/", {"action": "keep_one", "keep": pairs[0][1].pk}, format="json"
    )
    assert resolved.status_code == 200, resolved.content
    assert resolved.json()["resolution"] == "keep_one"
    assert callers[who].get(DUPLICATES_URL).json()["count"] == 2
    assert not Image.objects.filter(pk=pairs[0][0].pk).exists()


@pytest.mark.django_db(transaction=True)
def test_bad_review_requests_are_4xx_and_change_nothing(callers):
    data = image_bytes(seed=51)
    _add(data), _add(_reencoded(data))
    _find()
    group = open_groups().get()
    url = f"{DUPLICATES_URL}{group.pk}/resolve/"
    assert "action" in assert_error(callers.staff.post(url, {"action": "merge"}), 400)["fields"]
    assert "keep" in assert_error(callers.staff.post(url, {"action": "keep_one", "keep": 10**9}), 400)["fields"]
    assert "keep" in assert_error(callers.staff.post(url, {"action": "keep_one", "keep": "x"}), 400)["fields"]
    assert_error(callers.staff.post(f"{DUPLICATES_URL}{group.pk + 1000}/resolve/", {"action": "keep_all"}), 404)
    assert_error(callers.staff.get(DUPLICATES_URL, {"page": 99}), 404)
    assert Image.objects.count() == 2 and open_groups().get().pk == group.pk


@pytest.mark.django_db(transaction=True)
def test_an_upload_answers_with_its_near_duplicates(callers, collection):
    original = Image.objects.get(pk=collection[2].pk)
    with original.file.open("rb") as handle:
        data = handle.read()
    copy = callers.staff.post(IMAGES_URL, {"image": upload(_reencoded(data, scale=2.0), name="copy.png")})
    assert copy.status_code == 201, copy.content
    assert copy.json()["near_duplicates"] == [original.pk]
    fresh = callers.staff.post(IMAGES_URL, {"image": upload(image_bytes(seed=999))})
    assert fresh.status_code == 201 and fresh.json()["near_duplicates"] == []
    again = callers.staff.post(IMAGES_URL, {"image": upload(data)})  # the exact file: the stored image itself
    assert again.status_code == 200 and again.json()["id"] == original.pk
    assert again.json()["near_duplicates"] == [copy.json()["id"]]


@pytest.mark.django_db(transaction=True)
def test_the_schema_documents_the_duplicates_endpoints(client):
    schema = client.get("/api/v1/schema/", {"format": "json"}).json()
    assert {"/api/v1/duplicates/", "/api/v1/duplicates/find/", "/api/v1/duplicates/{id}/resolve/"} <= set(
        schema["paths"]
    )
    upload_answer = schema["paths"]["/api/v1/images/"]["post"]["responses"]["201"]["content"]["application/json"]
    name = upload_answer["schema"]["$ref"].rsplit("/", 1)[1]
    assert "near_duplicates" in schema["components"]["schemas"][name]["properties"]


# -- the page -----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_page_is_for_staff_and_resolves_a_group(client, django_user_model):
    data = image_bytes(seed=61)
    kept, other = _add(data), _add(_reencoded(data))
    _find()
    group = open_groups().get()
    assert client.get("/duplicates/").status_code == 302  # to the login
    client.force_login(django_user_model.objects.create_user("curator", is_staff=True))
    page = client.get("/duplicates/").content.decode()
    assert f"Group #{group.pk}" in page and f'value="{other.pk}"' in page

    bad = client.post(f"/duplicates/{group.pk}/", {"action": "merge"})
    assert bad.status_code == 400 and "Unknown action" in bad.content.decode()
    missing = client.post(f"/duplicates/{group.pk + 1000}/", {"action": "keep_all"})
    assert missing.status_code == 404
    assert Image.objects.count() == 2

    done = client.post(f"/duplicates/{group.pk}/", {"action": "keep_one", "keep": kept.pk})
    assert done.status_code == 302
    assert list(Image.objects.values_list("pk", flat=True)) == [kept.pk]
    assert f'id="group-{group.pk}"' not in client.get("/duplicates/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_command_finds_the_groups_and_says_where_to_review_them():
    data = image_bytes(seed=91)
    _add(data), _add(_reencoded(data))
    out = io.StringIO()
    call_command("find_duplicates", "--wait", verbosity=0, stdout=out)
    assert "1 group(s) of near-duplicates (2 images) to review at /duplicates/" in out.getvalue()
    assert len(_groups()) == 1


@pytest.mark.django_db(transaction=True)
def test_images_stored_before_fingerprints_existed_get_theirs_from_their_files():
    data = image_bytes(seed=95)
    images = [_add(data), _add(_reencoded(data, scale=2.0)), _add(image_bytes(seed=96))]
    stored = {f.image_id: bytes(f.vector) for f in ImageFingerprint.objects.all()}
    assert set(stored) == {i.pk for i in images}  # ingestion stored them
    ImageFingerprint.objects.all().delete()
    job = _find()
    assert _groups() == [{images[0].pk, images[1].pk}] and job.result["groups"] == 1
    assert {f.image_id: bytes(f.vector) for f in ImageFingerprint.objects.all()} == stored  # the same, from the files


@pytest.mark.django_db(transaction=True)
def test_the_admin_upload_names_the_near_duplicates_it_brought(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("admin", is_staff=True, is_superuser=True))
    data = image_bytes(seed=97)
    original = _add(data)
    files = [
        SimpleUploadedFile("copy.png", _reencoded(data, scale=2.0), "image/png"),
        SimpleUploadedFile("other.jpg", image_bytes(seed=98), "image/jpeg"),
    ]
    page = client.post("/admin/search/image/upload/", {"files": files}, follow=True).content.decode()
    copy = Image.objects.get(original_name="copy.png")
    assert f"1 uploaded image(s) are near-duplicates of collection images: #{copy.pk} ~ #{original.pk}." in page
