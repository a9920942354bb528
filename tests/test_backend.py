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


#: ops modules for NumPy arrays only: the compiled kernels (used only for NumPy arrays,
#: see cnnlab.ops.jit) and the Winograd kernels' generator.
HOST_ONLY = {"_winograd_kernels.py", "winograd_jit.py", "winograd_codegen.py", "jit.py",
             "pooling_jit.py"}


def device_paths() -> list[Path]:
    """The modules whose code runs on device arrays."""
    ops = [p for p in sorted((SRC / "ops").glob("*.py")) if p.name not in HOST_ONLY]
    return (ops + sorted((SRC / "layers").glob("*.py"))
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
    # host constants (NumPy branch of _mats); the compiled transforms' NumPy-only chunks
    "ops/winograd.py": {"array", "asarray", "matmul", "ascontiguousarray"},
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


# ----------------------------------------------------------------------------- a fake device
# A stand-in for CuPy made of NumPy: its arrays live "on the device" (a NumPy
# subclass whose type claims the ``cupy`` module, so ``array_module`` picks the
# fake module), refuse to meet host (plain NumPy) arrays in any operation or
# assignment, and the fake module exposes NumPy's functions with CuPy's
# restrictions that matter here (``as_strided`` without ``writeable``, random
# generators over Philox). Running the library on it shows, on any machine,
# that every host array is moved before it meets a device one and that results
# come back as NumPy arrays. What it cannot show: CuPy's numerics and speed.


class FakeDeviceArray(np.ndarray):
    """A "device" array: NumPy memory that will not mix with host arrays."""

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        name = f"{ufunc.__name__}.{method}"
        args = [_unwrap(v, name) for v in inputs]
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o, name) for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(f"np.{func.__name__} called on a device array (use xp.{func.__name__})")

    def __setitem__(self, key: Any, value: Any) -> None:
        np.ndarray.__setitem__(self.view(np.ndarray), _unwrap(key, "setitem"),
                               _unwrap(value, "setitem"))

    def get(self) -> np.ndarray:
        return np.array(self.view(np.ndarray))


FakeDeviceArray.__module__ = "cupy._fake"


def _unwrap(v: Any, where: str) -> Any:
    if isinstance(v, FakeDeviceArray):
        return v.view(np.ndarray)
    if isinstance(v, np.ndarray):
        raise TypeError(f"{where}: a host (NumPy) array {v.shape} meets a device array")
    if isinstance(v, tuple):
        return tuple(_unwrap(u, where) for u in v)
    if isinstance(v, list):
        return [_unwrap(u, where) for u in v]
    return v


def _wrap(v: Any) -> Any:
    if isinstance(v, FakeDeviceArray):
        return v
    if isinstance(v, np.ndarray):
        return v.view(FakeDeviceArray)
    if isinstance(v, np.generic) and not isinstance(v, np.dtype):
        return np.asarray(v).view(FakeDeviceArray)
    if isinstance(v, tuple):
        return tuple(_wrap(u) for u in v)
    return v


class _FakeGenerator:
    def __init__(self, bit_generator: Any) -> None:
        self._rng = np.random.Generator(bit_generator)

    def random(self, size: Any = None, dtype: Any = np.float64, out: Any = None) -> Any:
        return _wrap(self._rng.random(size, dtype=dtype))


def _as_strided(x: Any, shape: Any = None, strides: Any = None) -> Any:  # CuPy's signature
    return _wrap(np.lib.stride_tricks.as_strided(_unwrap(x, "as_strided"), shape, strides))


def _to_device(a: Any, dtype: Any = None, **kwargs: Any) -> Any:
    if isinstance(a, FakeDeviceArray):
        return a if dtype is None else a.astype(dtype)
    return np.array(a, dtype=dtype).view(FakeDeviceArray)  # a host -> device copy


class FakeCupy(types.ModuleType):
    """``cupy`` made of NumPy, with the restrictions above."""

    def __init__(self) -> None:
        super().__init__("cupy")
        self.__version__ = "0-fake"
        self.asarray = _to_device
        self.array = lambda a, dtype=None, copy=True: _to_device(np.array(_unwrap_host(a)),
                                                                  dtype)
        self.lib = types.SimpleNamespace(
            stride_tricks=types.SimpleNamespace(as_strided=_as_strided))
        self.random = types.SimpleNamespace(
            Generator=_FakeGenerator,
            Philox4x3210=lambda seed, size=None: np.random.Philox(seed))
        self.cuda = types.SimpleNamespace(
            runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
            Device=lambda *a: types.SimpleNamespace(id=0))
        self.ndarray = FakeDeviceArray

    def __getattr__(self, name: str) -> Any:
        obj = getattr(np, name)
        if isinstance(obj, type) or not callable(obj):
            return obj  # dtypes, constants

        def call(*args: Any, **kwargs: Any) -> Any:
            args = tuple(_unwrap(a, f"xp.{name}") for a in args)
            kwargs = {k: _unwrap(v, f"xp.{name}") for k, v in kwargs.items()}
            return _wrap(obj(*args, **kwargs))

        return call


def _unwrap_host(a: Any) -> Any:
    return a.view(np.ndarray) if isinstance(a, FakeDeviceArray) else a


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> FakeCupy:
    fake = FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(backend, "_gpu_checked", False)
    return fake


def _small_model(seed: int, dropout: float = 0.0) -> cnnlab.Sequential:
    layers = [
        cnnlab.Conv2D(8, 2, padding="same", activation="relu"),  # im2col
        cnnlab.Conv2D(8, 3, activation="relu"),  # Winograd (C_in 8, enough pixels)
        cnnlab.BatchNormalization(),
        cnnlab.MaxPooling2D(2),
        cnnlab.AveragePooling2D(2, strides=1, padding="same"),
        cnnlab.Flatten(),
        cnnlab.Dropout(dropout),
        cnnlab.Dense(16, activation="gelu"),
        cnnlab.Dense(3),
        cnnlab.Activation("softmax"),
    ]
    model = cnnlab.Sequential(layers, input_shape=(10, 10, 1), seed=seed)
    return model


def _data(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    return rng.random((n, 10, 10, 1), dtype=np.float32), rng.integers(0, 3, n)


def test_fake_device_is_strict(fake_gpu: FakeCupy) -> None:
    """The fake catches what CuPy would refuse (so the tests below mean something)."""
    d = backend.to_device(np.ones(3, dtype=np.float32), "gpu")
    assert backend.device_of(d) == "gpu" and backend.array_module(d) is fake_gpu
    with pytest.raises(TypeError, match="host"):
        d + np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="host"):
        d[...] = np.zeros(3, dtype=np.float32)
    with pytest.raises(TypeError):
        fake_gpu.lib.stride_tricks.as_strided(d, (3,), (4,), writeable=False)
    with pytest.raises(TypeError, match="np.concatenate"):
        np.concatenate([d, d])
    assert type(backend.to_numpy(d)) is np.ndarray
    bad = backend.to_device(np.array([1.0, np.nan], np.float32), "gpu")
    assert backend.first_nonfinite_sum([d, d, bad]) == 2
    assert backend.first_nonfinite_sum([d]) is None


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adadelta"])
def test_training_on_the_fake_device_matches_the_cpu(fake_gpu: FakeCupy, optimizer: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnlab.ops import parallel

    # one group on the CPU too, as on a device: the same NumPy calls on the same shapes
    # (and NumPy's Winograd transforms, which a device runs, not the compiled ones: Adam
    # turns float32 rounding differences in near-zero gradients into whole steps)
    monkeypatch.setattr(parallel, "workers_for", lambda xp: 1)
    monkeypatch.setenv("CNNLAB_JIT", "0")
    x, y = _data()
    cpu, dev = _small_model(3), _small_model(3).to("gpu")
    assert dev.device == "gpu" and all(backend.device_of(w) == "gpu"
                                       for layer in dev.layers for w in layer.weights)
    opt = {"name": optimizer, "learning_rate": 0.01} if optimizer != "sgd" else {
        "name": "sgd", "learning_rate": 0.05, "momentum": 0.9}
    for m in (cpu, dev):
        m.compile(dict(opt))
    for step in range(3):
        batch = slice(16 * step, 16 * step + 16)
        lc, cc = cpu.train_on_batch(x[batch], y[batch])
        ld, cd = dev.train_on_batch(x[batch], y[batch])
        assert isinstance(ld, float) and isinstance(cd, int)
        assert abs(lc - ld) <= 1e-5 * max(1.0, abs(lc)) and cc == cd
    # everything stayed on the device: weights, gradients, optimizer slots
    for layer in dev.layers:
        assert all(isinstance(a, FakeDeviceArray) for a in layer.weights + layer.grads)
    assert all(isinstance(a, FakeDeviceArray)
               for arrays in dev.optimizer.slots.values() for a in arrays)
    for wc, wd in zip(cpu.get_weights(), dev.get_weights(), strict=True):
        assert type(wd) is np.ndarray
        np.testing.assert_allclose(wd, wc, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(wc).max()))
    pc, pd = cpu.predict(x), dev.predict(x)
    assert type(pd) is np.ndarray
    np.testing.assert_allclose(pd, pc, rtol=1e-4, atol=1e-5)
    lc, ac = cpu.evaluate(x, y)
    ld, ad = dev.evaluate(x, y)
    assert abs(lc - ld) < 1e-4 and ac == ad


def test_dropout_on_the_fake_device_is_drawn_there_and_seeded(fake_gpu: FakeCupy) -> None:
    x, y = _data()
    runs = []
    for _ in range(2):
        m = _small_model(7, dropout=0.5).to("gpu")
        m.compile("adam")
        losses = [m.train_on_batch(x[:16], y[:16])[0] for _ in range(2)]
        runs.append((losses, m.get_weights()))
    assert runs[0][0] == runs[1][0]  # same seed, same masks, same losses
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_array_equal(a, b)
    layer = next(la for la in _small_model(7, 0.5).to("gpu").layers
                 if isinstance(la, cnnlab.Dropout))
    out = layer.forward(backend.to_device(np.ones((4, 50), np.float32), "gpu"), training=True)
    assert isinstance(out, FakeDeviceArray)
    kept = backend.to_numpy(out) != 0
    assert 0.2 < kept.mean() < 0.8
    assert np.all(backend.to_numpy(out)[kept] == 2.0)  # 1 / (1 - rate)


def test_fit_save_load_and_checkpoints_across_devices(fake_gpu: FakeCupy, tmp_path: Path) -> None:
    x, y = _data()
    dev = _small_model(11).to("gpu")
    dev.compile("adam")
    hist = dev.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y), verbose=0,
                   checkpoint_dir=tmp_path / "ck")
    assert len(hist.history["loss"]) == 2
    path = dev.save(tmp_path / "m.safetensors")
    cpu = cnnlab.load_model(path)
    assert cpu.device == "cpu"
    np.testing.assert_allclose(cpu.predict(x), dev.predict(x), rtol=1e-6, atol=1e-7)
    # the checkpoint, written from the device, resumes onto a device and onto the CPU
    resumed = []
    for device in ("gpu", "cpu"):
        again = _small_model(11).to(device)
        again.compile("adam")
        ck = tmp_path / f"ck-{device}"
        ck.mkdir()
        (ck / "checkpoint.safetensors").write_bytes((tmp_path / "ck" /
                                                      "checkpoint.safetensors").read_bytes())
        again.fit(x, y, epochs=3, batch_size=16, verbose=0, checkpoint_dir=ck, resume=True)
        assert again.optimizer.iterations == 9
        resumed.append(again.get_weights())
    for a, b in zip(*resumed, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    back = dev.to("cpu")
    assert back is dev and all(type(w) is np.ndarray for la in dev.layers for w in la.weights)
    assert all(type(a) is np.ndarray for arrays in dev.optimizer.slots.values() for a in arrays)


def test_a_nonfinite_gradient_on_the_device_names_its_layer(fake_gpu: FakeCupy) -> None:
    x, y = _data(8)
    dev = _small_model(1).to("gpu")
    dev.compile("sgd")
    dense = dev.get_layer("dense")
    dense.weights[0][0, :] = fake_gpu.asarray(np.float32(np.inf))
    with np.errstate(all="ignore"), pytest.raises(cnnlab.NonFiniteError,
                                                  match="layer 'dense'.*non-finite kernel"):
        dev.train_on_batch(x, y)
