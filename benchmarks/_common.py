"""Shared helpers of the skinfluence benchmarks: machine description, data,
peak-memory sampling, subprocess workers with time limits, JSON output.

This module imports only the standard library and NumPy at top level so that
the pyDVL worker can run under a different interpreter (see ``PYDVL_PYTHON``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"

#: Interpreter that has pyDVL (pyDVL 0.10 pins numpy<2, which conflicts with the
#: numpy>=2 environment of skinfluence; it lives in its own virtualenv).
PYDVL_PYTHON = os.environ.get("PYDVL_PYTHON", str(HERE / ".venv" / "bin" / "python"))


# --------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def blas_info() -> list[dict]:
    """threadpoolctl's view of the BLAS/OpenMP libraries loaded in this process."""
    try:
        import scipy.linalg  # noqa: F401  (load SciPy's BLAS too)
        from threadpoolctl import threadpool_info

        keep = ("user_api", "internal_api", "prefix", "version", "architecture", "num_threads")
        return [{k: d.get(k) for k in keep} for d in threadpool_info()]
    except Exception as exc:  # pragma: no cover - informational only
        return [{"error": repr(exc)}]


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except Exception:
        return None


def machine_info() -> dict:
    libs = [
        "numpy",
        "scipy",
        "scikit-learn",
        "skinfluence",
        "threadpoolctl",
        "psutil",
        "torch",
        "pyinfluence",
    ]
    return {
        "hostname_hash": abs(hash(platform.node())) % 10**6,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "mem_total_gib": _mem_total_gib(),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in libs},
        "pydvl_python": PYDVL_PYTHON,
        "blas": blas_info(),
        "env": {
            k: os.environ.get(k)
            for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
        },
        "git_commit": git_commit(),
        "load_average": os.getloadavg(),
    }


def set_threads(n: int | None) -> dict:
    """Thread count for every BLAS / OpenMP / torch pool of the workers
    (inherited through the environment); ``None`` leaves the defaults."""
    if n:
        for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[k] = str(n)
    return {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------ data
def make_logistic(n: int, p: int, seed: int = 0, n_test: int = 500):
    """Dense Gaussian features, labels from a logistic model with unit noise.

    Returns ``X (n, p), y (n,), X_test (n_test, p), y_test (n_test,)``; the
    streams are those of ``numpy.random.default_rng(seed)`` (identical across
    NumPy 1.26 and 2.x, which :func:`checksum` lets each worker verify).
    """
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(p) / np.sqrt(p) * 2.0
    X = rng.standard_normal((n + n_test, p))
    z = X @ w
    y = (rng.random(n + n_test) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)
    return X[:n], y[:n], X[n:], y[n:]


def make_sparse_text(n: int, p: int, nnz_per_row: int = 60, seed: int = 0, n_test: int = 500):
    """TF-IDF-like CSR data: Zipf-distributed term ids, log term counts times
    an idf weight, rows L2-normalised; labels from a sparse logistic model."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    m = n + n_test
    # Zipf-like vocabulary: term probability ~ 1 / (rank + 10)
    prob = 1.0 / (np.arange(p) + 10.0)
    prob /= prob.sum()
    cols = rng.choice(p, size=m * nnz_per_row, p=prob)
    rows = np.repeat(np.arange(m), nnz_per_row)
    counts = sp.csr_matrix((np.ones(m * nnz_per_row), (rows, cols)), shape=(m, p))
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=p)
    idf = np.log((1 + m) / (1 + df)) + 1.0
    X = counts.copy()
    X.data = (1.0 + np.log(X.data)) * idf[X.indices]
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X
    X = X.tocsr()
    w = rng.standard_normal(p) * 3.0
    z = X @ w
    y = (rng.random(m) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)
    return X[:n], y[:n], X[n:], y[n:]


def make_data(case: dict):
    """The data of a benchmark case (regression targets for ``estimator="ridge"``)."""
    if case.get("sparse"):
        return make_sparse_text(case["n"], case["p"], case.get("nnz", 60), case.get("seed", 0))
    seed = case.get("seed", 0)
    X, y, Xt, yt = make_logistic(case["n"], case["p"], seed, case.get("n_test", 500))
    if case.get("estimator") == "ridge":
        rng = np.random.default_rng(seed + 7)
        w = rng.standard_normal(X.shape[1]) / np.sqrt(X.shape[1])
        y = X @ w + rng.standard_normal(X.shape[0])
        yt = Xt @ w + rng.standard_normal(Xt.shape[0])
    return X, y, Xt, yt


def checksum(X, y) -> float:
    """A cheap fingerprint of the data, to check workers regenerate the same rows."""
    import scipy.sparse as sp

    if sp.issparse(X):
        s = float(X.data[:100000].sum()) + float(X.indices[:100000].sum())
    else:
        s = float(X[:2000].sum()) + float(X[-2000:].sum())
    return round(s + float(y.sum()), 6)


# ---------------------------------------------------------------------- memory
class PeakRSS:
    """Peak resident set size of this process while the ``with`` block runs,
    sampled with psutil every ``interval`` seconds (plus once at entry and exit).

    ``peak_mib`` is the absolute peak, ``delta_mib`` the peak minus the RSS at
    entry: the extra memory the measured call needed on top of what was
    already resident (data, fitted model).
    """

    def __init__(self, interval: float = 0.005):
        import psutil

        self.interval = interval
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.start_mib = self.peak_mib = 0.0

    def _rss(self) -> float:
        return self._proc.memory_info().rss / 2**20

    def _run(self):
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self._rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.start_mib = self.peak_mib = self._rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self._rss())

    @property
    def delta_mib(self) -> float:
        return self.peak_mib - self.start_mib


def vmhwm_mib() -> float:
    """``VmHWM`` (peak resident memory) of this process, Linux: unlike
    ``ru_maxrss``, it does not carry the parent's peak over ``fork`` / ``exec``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def run_child(script: str, args: list[str], what: str) -> dict:
    """Run ``python script --child *args`` in a fresh process; its last line of
    output is the JSON record returned."""
    proc = subprocess.run(
        [sys.executable, script, "--child", *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        raise SystemExit(f"child failed for {what}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def save_records(out: Path, records: list[dict], table: str):
    """Write ``records`` with the machine and the command line to ``out`` and
    print the Markdown ``table``."""
    meta = {**machine_info(), "date": now(), "command": " ".join(sys.argv)}
    write_json(out, {"meta": meta, "records": records})
    print(table)
    print(f"\nwrote {out}")


def ru_maxrss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


# ------------------------------------------------------------------- workers
def run_worker(
    spec: dict, timeout: float, python: str | None = None, mem_limit_gib: float = 16.0
) -> dict:
    """Run ``_worker.py`` with ``spec`` in a fresh process; never raises.

    The worker prints one JSON line prefixed ``RESULT:``. Timeouts, crashes
    and Python errors come back as results with ``status`` set to
    ``"timeout"``, ``"crashed"``, ``"out_of_memory"`` or ``"error"``. The
    parent samples the worker's RSS every 50 ms and kills it above
    ``mem_limit_gib`` (this machine has 24 GiB shared with other users), so
    a library that runs out of memory fails alone; ``child_peak_rss_mib`` is
    that externally sampled peak.
    """
    import psutil

    python = python or sys.executable
    cmd = [python, str(HERE / "_worker.py"), json.dumps(spec)]
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    out_chunks, err_chunks = [], []
    readers = [
        threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True),
        threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True),
    ]
    for r in readers:
        r.start()
    ps = psutil.Process(proc.pid)
    peak, status = 0.0, None
    limit = mem_limit_gib * 2**30
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss
        except psutil.Error:
            rss = 0
        peak = max(peak, rss)
        if rss > limit:
            status = "out_of_memory"
            proc.kill()
            break
        if time.perf_counter() - t0 > timeout:
            status = "timeout"
            proc.kill()
            break
        time.sleep(0.05)
    proc.wait()
    for r in readers:
        r.join(timeout=10)
    wall = round(time.perf_counter() - t0, 2)
    stdout, stderr = "".join(out_chunks), "".join(err_chunks)
    base = {"wall_s": wall, "child_peak_rss_mib": round(peak / 2**20, 1)}
    if status == "timeout":
        return {"status": "timeout", "timeout_s": timeout, **base}
    if status == "out_of_memory":
        return {
            "status": "out_of_memory",
            "detail": f"RSS above the {mem_limit_gib:g} GiB cap; killed",
            **base,
        }
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT:"):
            out = json.loads(line[len("RESULT:") :])
            out.update({k: v for k, v in base.items() if k not in out})
            return out
    tail = (stderr or "")[-1500:]
    status = "crashed"
    if "MemoryError" in tail or "Unable to allocate" in tail or "out of memory" in tail.lower():
        status = "out_of_memory"
    elif proc.returncode == -9:
        status = "killed (SIGKILL, likely out of memory)"
    return {"status": status, "returncode": proc.returncode, "stderr_tail": tail, **base}


def emit(result: dict):
    """Worker side: print the result line the parent looks for."""
    print("RESULT:" + json.dumps(result, default=_json_default), flush=True)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_json(path: Path, payload: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")


def agreement(ref: np.ndarray, other: np.ndarray) -> dict:
    """How close ``other`` is to ``ref`` (both in skinfluence's convention)."""
    ref = np.asarray(ref, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if ref.shape != other.shape:
        return {"error": f"shape {other.shape} != reference {ref.shape}"}
    scale = float(np.max(np.abs(ref))) or 1.0
    err = np.abs(other - ref)
    a, b = ref.ravel(), other.ravel()
    pearson = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
    return {
        "max_abs_err_rel_to_max": float(err.max() / scale),
        "max_rel_err_entrywise_median": float(
            np.median(err / np.maximum(np.abs(ref), 1e-3 * scale))
        ),
        "pearson": pearson,
        "sign_agreement": float(np.mean(np.sign(a) == np.sign(b))),
    }
