"""GeoSim on four machines that share nothing but Postgres, Redis and an S3 bucket (network namespaces).

Web hosts A and B run gunicorn, worker hosts C and D run Celery; each has its own empty
``GEOSIM_DATA_DIR`` and cannot read the others' (tests/multihost/network.py). What one host writes,
another can only get through the database, the queue or the bucket.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import image_bytes
from tests.multihost.cluster import http_bytes, http_json, search, upload, wait_for

# Four Django processes and three servers start on a 2-core machine: minutes, not the suite's 10-minute limit.
pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.objectstore, pytest.mark.timeout(1500)]

LABELS = ("gneiss", "marble", "schist")


@pytest.fixture(scope="module")
def webs(cluster, hosts):
    return cluster.start_web(hosts["a"]), cluster.start_web(hosts["b"])


def _files(directory) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


def _top_hit(web, data: bytes) -> dict | None:
    status, answer = search(web, data)
    return answer if status == 200 and answer["results"] else None


def _upload_and_wait(cluster, web_in, web_out, seeds, *, workers) -> dict[int, bytes]:
    """Upload one image per seed on ``web_in``; return {id: bytes} once ``web_out`` finds each as its own top hit."""
    uploaded = {}
    for seed in seeds:
        data = image_bytes(seed=seed)
        uploaded[upload(web_in, cluster.token, data, label=LABELS[seed % 3])["id"]] = data
    for image_id, data in uploaded.items():
        wait_for(
            lambda image_id=image_id, data=data: (
                (hit := _top_hit(web_out, data)) and hit["results"][0]["id"] == image_id
            ),
            timeout=120,
            what=f"image {image_id} to be searchable on web {web_out.host.name}",
            logs=[*workers, web_out],
        )
    return uploaded


def _active_index(cluster) -> tuple[int, int]:
    return cluster.sql("SELECT version, vector_count FROM search_indexversion WHERE is_active")[0]


def _job(cluster, web, job_id: int) -> dict:
    status, answer = http_json(
        "GET", f"{web.url}/api/v1/jobs/{job_id}/", headers={"Authorization": f"Token {cluster.token}"}
    )
    assert status == 200, answer
    return answer


def test_an_upload_on_web_a_is_searchable_on_web_b(cluster, hosts, webs):
    web_a, web_b = webs
    assert _files(hosts["b"].data_dir) == [], "web B starts with an empty disk"
    workers = [cluster.start_worker(hosts["c"]), cluster.start_worker(hosts["d"])]

    uploaded = _upload_and_wait(cluster, web_a, web_b, range(6), workers=workers)

    # B answers from the live version, which it fetched from the bucket into its own cache.
    version, count = _active_index(cluster)
    image_id, data = next(reversed(uploaded.items()))
    status, answer = search(web_b, data)
    assert (status, answer["index_version"], answer["results"][0]["id"]) == (200, version, image_id)
    assert count == len(uploaded)
    cached = _files(hosts["b"].data_dir / "index")
    assert any(name.startswith(f"v{version:07d}/") for name in cached), cached
    assert not (hosts["b"].data_dir / "media").exists(), "media come from the bucket, never B's disk"
    # The image itself, uploaded through A, is served by B from the bucket.
    image_url = answer["results"][0]["image_url"]
    assert image_url.startswith(f"{web_b.url}/media/"), image_url
    status, body = http_bytes(image_url)
    assert (status, body) == (200, data)
    for worker in workers:
        worker.stop()


def test_a_worker_killed_mid_rebuild_leaves_the_old_index_serving_and_another_host_finishes(cluster, hosts, webs):
    web_a, web_b = webs
    helper = cluster.start_worker(hosts["d"])
    uploaded = _upload_and_wait(cluster, web_a, web_b, range(100, 104), workers=[helper])
    helper.stop()  # host D goes down for a while: the rebuild can only go to host C
    old_version, old_count = _active_index(cluster)

    slow = cluster.start_worker(hosts["c"], slow_build_seconds=600)
    status, answer = http_json(
        "POST", f"{web_a.url}/api/v1/index/rebuild/", headers={"Authorization": f"Token {cluster.token}"}
    )
    assert status == 202, answer
    job_id = answer["job"]
    wait_for(lambda: _job(cluster, web_a, job_id)["status"] == "running", timeout=60, what="the rebuild to start on C",
             logs=[slow])  # fmt: skip
    slow.kill()  # a power cut on host C in the middle of the build
    time.sleep(3)  # longer than the stale threshold below, counted from the job's last heartbeat

    # Both web hosts keep serving the old version; nothing half-built is live.
    for web in webs:
        image_id, data = next(iter(uploaded.items()))
        status, answer = search(web, data)
        assert (status, answer["index_version"], answer["results"][0]["id"]) == (200, old_version, image_id)
    assert _active_index(cluster) == (old_version, old_count)

    # Host D comes back: its start-up sweep finds the job silent, fails it with the reason and runs it again.
    finisher = cluster.start_worker(hosts["d"], GEOSIM_JOB_STALE_SECONDS="2")
    wait_for(lambda: _active_index(cluster)[0] > old_version, timeout=180, what="host D's rebuild to go live",
             logs=[finisher])  # fmt: skip
    killed = _job(cluster, web_a, job_id)
    assert killed["status"] == "failed" and "worker running this job stopped" in killed["error"]
    retried = "SELECT status FROM search_job WHERE kind = 'reindex' AND id > %s"
    wait_for(lambda: cluster.sql(retried, [job_id]) == [("succeeded",)], timeout=60, what="the retried job to finish",
             logs=[finisher])  # fmt: skip
    new_version, new_count = _active_index(cluster)
    assert new_count == old_count
    for web in webs:
        image_id, data = next(reversed(uploaded.items()))
        status, answer = search(web, data)
        assert (status, answer["index_version"], answer["results"][0]["id"]) == (200, new_version, image_id)
    finisher.stop()
