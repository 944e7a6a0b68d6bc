"""In-process cost of a submit (accept_run) and a /jobs page (list_runs + statusInfo) with 10k runs, SQLite."""
import statistics, tempfile, time, uuid
from pathlib import Path
from types import SimpleNamespace
from polartep_hub.service.db import make_engine, make_sessionmaker, upgrade_to_head
from polartep_hub.accounts.models import Account
from polartep_hub.processors import runs
from polartep_hub.processors.models import ProcessorRun
from polartep_hub.processors.ogc_jobs import status_info
from polartep_hub.processors.notebook_store import NotebookStore
from polartep_hub.service.orm import utcnow
from tests.helpers.processors import create_processor, echo_notebook

tmp = Path(tempfile.mkdtemp())
url = f"sqlite:///{tmp}/p.sqlite"
upgrade_to_head(url)
sessions = make_sessionmaker(make_engine(url))
with sessions() as s:
    s.add(Account(name="bench", plan="standard")); s.commit()
create_processor(url, tmp, "bench-echo", "bench", echo_notebook())

from polartep_hub.processors.api import Actor
actor = Actor(name="bench", admin=False)
with sessions() as s:
    version = runs.find_version(s, "bench-echo", actor, None)
    vid, inv = version.id, s.query(Account.id).filter(Account.name == "bench").scalar()
    now = utcnow()
    s.add_all(ProcessorRun(id=str(uuid.uuid4()), version_id=vid, invoker_id=inv, status="successful", inputs={"days": 3},
                           created_at=now, updated_at=now, timeout_seconds=60, results={"total": 45}) for _ in range(10_000))
    s.commit()
nb = NotebookStore(tmp / "notebooks").read(version.notebook_sha256)
context = SimpleNamespace(config=SimpleNamespace(public_url="http://x", prefix="/services/platform/"))
subs, lists = [], []
for _ in range(200):
    t = time.perf_counter()
    with sessions() as s:
        v = runs.find_version(s, "bench-echo", actor, None)
        runs.accept_run(s, processor_name="bench-echo", actor=actor, given={}, version=None, notebook=nb, version_row=v)
    subs.append(time.perf_counter() - t)
    t = time.perf_counter()
    with sessions() as s:
        rows = runs.list_runs(s, actor, limit=11, offset=0)
        page = [status_info(context, r, p) for r, p, _ in rows[:10]]
    lists.append(time.perf_counter() - t)
q = lambda xs: (round(1000 * statistics.median(xs), 2), round(1000 * sorted(xs)[int(0.99 * len(xs))], 2))
print({"accept_run_p50_p99_ms": q(subs), "jobs_page_p50_p99_ms": q(lists)})
