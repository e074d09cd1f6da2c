"""Background threads for jobs in the embedded mode (no Celery worker: ``REDIS_URL`` unset).

A request that starts long work (an upload's processing, a rebuild, a projection) returns at once;
the job runs on a thread of this process and reports its progress on its row, which ``/jobs/`` and
the explorer poll, exactly as with a real worker. Two single-thread queues, like the Celery queues:
``JOB_QUEUE`` for indexing work and ``LOW_PRIORITY_QUEUE`` for projections, so a t-SNE never delays
an upload becoming searchable. SQLite runs in WAL mode with a busy timeout (settings), so pages keep
reading while a job writes.

Jobs queued here live in memory: ones still pending when the process stops stay ``pending`` rows and
are sent again by the next ``manage.py rebuild_index`` / upload, or run by the sweep with a worker.
``GEOSIM_IN_PROCESS_JOBS=inline`` runs them in the calling thread instead (the test suite does, so a
test can assert on a job's result right after starting it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import connections

logger = logging.getLogger(__name__)

_pools: dict[str, ThreadPoolExecutor] = {}
_pending: set[Future] = set()
_lock = threading.Lock()


def submit(run: Callable[[], None], *, queue: str) -> Future:
    """Run ``run()`` on the queue's background thread; its database connections are closed afterwards."""
    with _lock:
        pool = _pools.get(queue)
        if pool is None:
            pool = _pools[queue] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"geosim-{queue}")
        future = pool.submit(_run_closing_connections, run)
        _pending.add(future)
    future.add_done_callback(_forget)
    return future


def wait_idle(timeout: float | None = None) -> bool:
    """Block until every job submitted so far has finished (tests, commands); False on timeout."""
    with _lock:
        waiting = list(_pending)
    for future in waiting:
        try:
            future.result(timeout=timeout)
        except TimeoutError:
            return False
        except Exception:  # noqa: S110 — the job's failure is recorded on its row and logged already
            pass
    return True


def _run_closing_connections(run: Callable[[], None]) -> None:
    try:
        run()
    except Exception:
        logger.exception("A background job crashed outside its handler.")
        raise
    finally:
        connections.close_all()  # this thread's own connections; the next job opens fresh ones


def _forget(future: Future) -> None:
    with _lock:
        _pending.discard(future)
