"""The NumPy/CuPy seam, checked on every machine (no GPU needed).

* Every ``xp.<name>`` (and ``xp.<sub>.<name>``) the package uses exists in
  CuPy, and every keyword it passes is in the CuPy function's signature; the
  same for the keywords of ndarray methods (``.astype(copy=False)`` ...).
  ``import cupy`` works without a GPU, so a NumPy-only call is caught on a
  CPU-only CI. Skipped (saying so) where CuPy is not installed.
* The device code (ops/, layers/, optimizers) calls ``np.`` only for host
  things (dtypes, constants, host-side copies), by an explicit allowlist.
* Asking for a GPU without one: a clear :class:`DeviceError` naming what is
  missing (CuPy not installed, or no usable CUDA device), also from the CLI.
* ``import cnnlab`` and a CPU training step never import CuPy.
* A fake device: a NumPy-backed stand-in for CuPy whose arrays refuse to mix
  with host arrays, so the whole training path runs "on a device" here and a
  missing transfer (or a NumPy-only argument such as ``writeable=``) fails.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cnnlab
from cnnlab import backend
from cnnlab.errors import DeviceError, InvalidArgumentError

SRC = Path(cnnlab.__file__).parent

# ----------------------------------------------------------------------------- AST scan


def _dotted(node: ast.AST) -> str | None:
    """``xp.a.b`` (or ``array_module(...).a``) as ``"a.b"``; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "xp":
        return ".".join(reversed(parts)) if parts else None
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "array_module" and parts):
        return ".".join(reversed(parts))
    return None


def xp_uses() -> dict[str, set[str]]:
    """``{"name.sub": {keywords passed}}`` over every module of the package, with
    the place of first use in ``_where``."""
    uses: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                name = _dotted(node)
                if name:
                    uses.setdefault(name, set())
                    _where.setdefault(name, f"{path.relative_to(SRC)}:{node.lineno}")
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name:
                    uses.setdefault(name, set()).update(
                        k.arg for k in node.keywords if k.arg is not None)
    return uses


_where: dict[str, str] = {}

#: Keywords of CuPy callables that have neither an ``inspect`` signature nor a
#: signature line in their docstring, from CuPy's documentation. Every entry is
#: checked to be named in the object's docstring, so the table cannot drift far.
NO_SIGNATURE = {
    "random.Philox4x3210": {"seed", "size"},
}

#: ndarray methods whose keyword arguments are checked against ``cupy.ndarray``.
ARRAY_METHODS = {"astype", "sum", "mean", "max", "min", "argmax", "reshape", "copy",
                 "transpose", "fill", "clip", "all", "any"}


def _doc_signature(obj: Any) -> inspect.Signature | None:
    """The signature on the first line of a docstring, ``name(a, b=1, \\*, c=None)``."""
    doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    if not doc:
        return None
    m = re.match(r"^[\w.]*\((.*)\)", doc[0].strip())
    if not m:
        return None
    params = m.group(1).replace("\\*", "*").replace("self, ", "").replace("self", "")
    params = re.sub(r"=\s*[^,]+", "=None", params)  # defaults: only the names matter
    try:
        fn = ast.parse(f"def f({params}): pass").body[0]
    except SyntaxError:
        return None
    ns: dict[str, Any] = {}
    exec(compile(ast.Module([fn], []), "<sig>", "exec"), ns)  # noqa: S102 (parsed names only)
    return inspect.signature(ns["f"])


def _keywords_ok(obj: Any, name: str, keywords: set[str]) -> tuple[bool, str]:
    """Whether ``obj`` accepts ``keywords``; the second item says how that was decided."""
    if name in NO_SIGNATURE:
        doc = obj.__doc__ or ""
        missing = {k for k in NO_SIGNATURE[name] if not re.search(rf"\b{k}\b", doc)}
        assert not missing, f"NO_SIGNATURE[{name!r}] names {missing}, not in CuPy's docs"
        return keywords <= NO_SIGNATURE[name], f"table {sorted(NO_SIGNATURE[name])}"
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = _doc_signature(obj)
    if sig is None:
        return False, "no signature found: add it to NO_SIGNATURE"
    params = sig.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return True, "**kwargs"
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return keywords <= names, f"signature {sig}"


@pytest.fixture(scope="module")
def cupy_module() -> Any:
    try:
        import cupy  # type: ignore[import-not-found]
    except ImportError as e:
        pytest.skip(f"CuPy is not installed ({e}): pip install 'cnnlab[gpu]' to check its API")
    return cupy


def test_the_scan_finds_the_seam() -> None:
    uses = xp_uses()
    # sanity: the scan sees what the ops use, with their keywords
    assert "matmul" in uses and "out" in uses["matmul"]
    assert "lib.stride_tricks.as_strided" in uses
    assert "zeros_like" in uses  # array_module(p).zeros_like(p) in the optimizers


def test_every_xp_name_exists_in_cupy_with_its_keywords(cupy_module: Any) -> None:
    problems = []
    for name, keywords in sorted(xp_uses().items()):
        obj: Any = cupy_module
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            problems.append(f"cupy.{name} does not exist (used at {_where.get(name)})")
            continue
        if keywords and callable(obj):
            ok, how = _keywords_ok(obj, name, keywords)
            if not ok:
                problems.append(f"cupy.{name} does not take {sorted(keywords)} ({how}; "
                                f"used at {_where.get(name)})")
    assert not problems, "\n".join(problems)


def _method_keywords(paths: list[Path]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ARRAY_METHODS and node.keywords
                    and not (isinstance(node.func.value, ast.Name)
                             and node.func.value.id in ("np", "xp", "math"))):
                out.setdefault(node.func.attr, set()).update(
                    k.arg for k in node.keywords if k.arg is not None)
    return out


def device_paths() -> list[Path]:
    """The modules whose code runs on device arrays."""
    return (sorted((SRC / "ops").glob("*.py")) + sorted((SRC / "layers").glob("*.py"))
            + [SRC / "optimizers.py", SRC / "regularizers.py", SRC / "training" / "loop.py"])


def test_array_method_keywords_exist_in_cupy(cupy_module: Any) -> None:
    problems = []
    for method, keywords in sorted(_method_keywords(device_paths()).items()):
        ok, how = _keywords_ok(getattr(cupy_module.ndarray, method), method, keywords)
        if not ok:
            problems.append(f"cupy.ndarray.{method} does not take {sorted(keywords)} ({how})")
    assert not problems, "\n".join(problems)


def test_the_signature_checks_can_fail(cupy_module: Any) -> None:
    """The checker rejects NumPy-only keywords (so the two tests above can fail)."""
    ok, _ = _keywords_ok(cupy_module.lib.stride_tricks.as_strided, "as_strided", {"writeable"})
    assert not ok
    ok, _ = _keywords_ok(cupy_module.maximum, "maximum", {"where"})  # NumPy's ufuncs take it
    assert not ok
    ok, _ = _keywords_ok(cupy_module.maximum, "maximum", {"out", "dtype"})
    assert ok
    ok, _ = _keywords_ok(cupy_module.ndarray.astype, "astype", {"copy"})
    assert ok


# ----------------------------------------------------------------------------- np. allowlist

#: What the device code may take from ``np.`` (types, dtypes, constants, host-side
#: work); anything else is probably an op on an array that may live on a GPU.
NP_ALLOWED_EVERYWHERE = {"dtype", "ndarray", "random", "float32", "float64", "int8", "int32",
                         "int64", "bool_", "integer", "floating"}
NP_ALLOWED = {
    "ops/activations.py": {"polynomial"},  # constants computed at import
    "ops/schedule.py": {"empty"},  # scratch buffers, NumPy branch only
    "ops/winograd.py": {"array", "asarray"},  # host constants; NumPy branch of _mats
    "layers/base.py": {"array", "asarray", "shape"},  # host copies, NumPy branch
    "layers/normalization.py": {"ones", "zeros"},  # initial values, drawn on the host
    "optimizers.py": {"array", "asarray"},  # the step count; NumPy branch of _slot_like
}


def test_device_code_uses_np_only_for_host_things() -> None:
    problems = []
    for path in device_paths():
        rel = str(path.relative_to(SRC))
        allowed = NP_ALLOWED_EVERYWHERE | NP_ALLOWED.get(rel, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "np" and node.attr not in allowed):
                problems.append(f"{rel}:{node.lineno}: np.{node.attr}")
    assert not problems, "np. calls in device code (use xp = array_module(...)):\n" + "\n".join(
        problems)


# ----------------------------------------------------------------------------- no GPU


@pytest.fixture
def no_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    """CuPy not installed: its import fails."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(backend, "_gpu_checked", False)


def _fake_cupy_without_device(error: Exception | None, count: int = 0) -> types.ModuleType:
    fake = types.ModuleType("cupy")
    fake.__version__ = "99.0-fake"  # type: ignore[attr-defined]

    def get_device_count() -> int:
        if error is not None:
            raise error
        return count

    fake.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    return fake


def test_gpu_without_cupy_names_the_extra(no_cupy: None) -> None:
    with pytest.raises(DeviceError, match=r"CuPy.*not installed.*pip install 'cnnlab\[gpu\]'"):
        backend.get_device("gpu")
    model = cnnlab.seed_model(seed=0)
    with pytest.raises(DeviceError, match="not installed"):
        model.to("gpu")
    assert model.device == "cpu"
    assert backend.device_of(model.layers[0].weights[0]) == "cpu"


def test_gpu_with_cupy_but_no_device_says_so_with_cupys_message(
        monkeypatch: pytest.MonkeyPatch) -> None:
    error = RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy_without_device(error))
    monkeypatch.setattr(backend, "_gpu_checked", False)
    with pytest.raises(DeviceError) as info:
        backend.get_device("cuda")
    text = str(info.value)
    assert "CuPy 99.0-fake is installed but cannot use a CUDA device" in text
    assert "cudaErrorNoDevice: no CUDA-capable device is detected" in text
    assert isinstance(info.value, cnnlab.CnnlabError)


def test_gpu_with_zero_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy_without_device(None, count=0))
    monkeypatch.setattr(backend, "_gpu_checked", False)
    with pytest.raises(DeviceError, match="finds no CUDA device"):
        backend.get_device("gpu")


def test_this_machines_gpu_state_is_reported_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the real CuPy: either a GPU works, or the error names CuPy's reason."""
    monkeypatch.setattr(backend, "_gpu_checked", False)
    try:
        assert backend.get_device("gpu") == "gpu"
    except DeviceError as e:
        assert "not installed" in str(e) or "cannot use a CUDA device" in str(e) \
            or "no CUDA device" in str(e)


def test_unknown_device_name() -> None:
    with pytest.raises(InvalidArgumentError, match=r"unknown device 'tpu'.*\('cpu', 'gpu'\)"):
        backend.get_device("tpu")
    with pytest.raises(InvalidArgumentError, match="unknown device"):
        cnnlab.seed_model(seed=0).to(3)  # type: ignore[arg-type]


def test_cli_train_on_a_missing_gpu_exits_2_with_one_line(
        no_cupy: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cnnlab.cli import main

    rc = main(["train", "--device", "gpu", "--epochs", "1", "--out", str(tmp_path / "run"),
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("cnnlab: error: device 'gpu' needs CuPy") and "pip install" in err
    assert not (tmp_path / "run").exists()  # failed before any data was read


def test_cpu_helpers_round_trip_without_copies() -> None:
    a = np.arange(6.0).reshape(2, 3)
    assert backend.to_device(a, "cpu") is a
    assert backend.to_numpy(a) is a
    assert backend.device_of(a) == "cpu"
    assert backend.module_for("cpu") is np
    rng = np.random.default_rng(0)
    assert backend.device_generator(rng, np) is rng
    assert backend.first_nonfinite_sum([a, a]) is None
    assert backend.first_nonfinite_sum([a, np.array([1.0, np.inf])]) == 1
    assert backend.first_nonfinite_sum([]) is None


# ----------------------------------------------------------------------------- no CuPy import


def test_import_and_cpu_training_never_import_cupy() -> None:
    code = (
        "import sys, numpy as np, cnnlab\n"
        "m = cnnlab.Sequential([cnnlab.Conv2D(4, 3, activation='relu'), cnnlab.Dropout(0.5),"
        " cnnlab.Flatten(), cnnlab.Dense(3), cnnlab.Activation('softmax')],"
        " input_shape=(6, 6, 1), seed=0).to('cpu')\n"
        "m.compile('adam')\n"
        "x = np.random.default_rng(0).random((8, 6, 6, 1), dtype=np.float32)\n"
        "m.train_on_batch(x, np.arange(8) % 3)\n"
        "m.predict(x); m.evaluate(x, np.arange(8) % 3)\n"
        "assert 'cupy' not in sys.modules, sorted(k for k in sys.modules if 'cupy' in k)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
