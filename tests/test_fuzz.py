"""Coverage-guided fuzzing of the parsers of untrusted bytes (issue 18).

Two kinds of test:

- **Regressions** (plain tests): every input the fuzzers found that raised
  something other than a :class:`~cnnlab.errors.CnnlabError` is kept in
  ``fuzz/regressions/<harness>/``; here each is fed to the library directly and
  must raise the documented error with a clear message.
- **Short fuzzing runs** (marker ``fuzz``): each harness in ``fuzz/`` runs for a few
  seconds from its seed corpus (``fuzz/corpus/<harness>``), in a subprocess so
  atheris's instrumentation stays out of this process; it must end without a
  finding. The same harnesses also replay the regression inputs. The long campaign
  is ``scripts/fuzz_campaign.py``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnlab.datasets.npz import load_npz
from cnnlab.errors import (
    DataFormatError,
    ImageDecodeError,
    ModelFileError,
    NoDigitError,
    SpecError,
)
from cnnlab.layers import Dense, Flatten
from cnnlab.model import Sequential
from cnnlab.preprocess import prepare_image
from cnnlab.saving import load_model, load_spec, model_from_json
from cnnlab.serialization import encode, tensors_of

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
REGRESSIONS = FUZZ / "regressions"
HARNESSES = sorted(p.stem for p in FUZZ.glob("fuzz_*.py"))
SECONDS = 4  # per harness; six harnesses stay well under a minute

needs_atheris = pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                                   reason="atheris is not installed (the 'test' extra)")


# ------------------------------------------------------------------------ regressions


def test_every_parser_has_a_harness_and_seeds():
    assert set(HARNESSES) >= {"fuzz_idx", "fuzz_image", "fuzz_model_file", "fuzz_spec",
                              "fuzz_npz", "fuzz_image_folder"}
    for harness in HARNESSES:
        seeds = list((FUZZ / "corpus" / harness).iterdir())
        assert seeds, f"{harness} has no seed corpus"
        assert all(s.stat().st_size <= 64 * 1024 for s in seeds), "seeds must stay small"


def test_jpeg_whose_noise_threshold_is_above_its_ink_is_no_digit():
    # Found by fuzz_image: an upright-rotated (EXIF 6) 12x10 JPEG whose border noise
    # put the bounding-box threshold above the ink's peak: IndexError on an empty crop.
    data = (REGRESSIONS / "fuzz_image" / "noise-above-peak.jpg").read_bytes()
    with pytest.raises(NoDigitError, match="no digit found"):
        prepare_image(data, name="noise.jpg")


def test_jpeg_with_malformed_exif_is_read_once_not_twice():
    # Found by fuzz_image: prepare_image applied the EXIF orientation a second time
    # (open_image had already), re-reading an EXIF block of zeros: SyntaxError from
    # Pillow, which the server turned into a 500.
    data = (REGRESSIONS / "fuzz_image" / "exif-all-zeros.jpg").read_bytes()
    try:
        digit = prepare_image(data, name="zeros.jpg")
    except NoDigitError:
        pass  # a documented answer too; what matters is no SyntaxError
    else:
        assert digit.shape == (28, 28)
    # A Pillow image handed over directly still gets its orientation applied: a
    # prepared digit or a documented error, never Pillow's SyntaxError.
    from PIL import Image

    try:
        prepare_image(Image.open(io.BytesIO(data)), name="zeros")
    except (NoDigitError, ImageDecodeError):
        pass


def test_spec_file_that_is_not_utf8_is_a_spec_error(tmp_path):
    # Found by fuzz_spec: Path.read_text raised UnicodeDecodeError.
    path = tmp_path / "spec.json"
    path.write_bytes((REGRESSIONS / "fuzz_spec" / "not-utf8.json").read_bytes())
    with pytest.raises(SpecError, match=r"spec\.json: not UTF-8 text \(byte \d+"):
        load_spec(path)


@pytest.mark.parametrize("depth", [2000, 50_000])
def test_json_nested_past_the_recursion_limit_is_a_spec_error(tmp_path, depth):
    # json.loads raises RecursionError, not JSONDecodeError, on deep nesting.
    text = "[" * depth + "]" * depth
    with pytest.raises(SpecError, match="nested too deeply"):
        model_from_json(text)
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(SpecError, match="deep.json: not valid JSON .nested too deeply"):
        load_spec(path)


@pytest.mark.parametrize("key", ["architecture", "class_names", "preprocessing",
                                 "training_config"])
def test_model_metadata_nested_too_deeply_is_a_model_file_error(tmp_path, key):
    model = Sequential([Flatten(), Dense(2, activation="softmax")], input_shape=(2, 2, 1))
    meta = {"cnnlab_format": "1", "architecture": model.get_config(),
            "class_names": ["a", "b"], "preprocessing": {"mode": "digit"},
            "training_config": {}}
    meta[key] = "[" * 100_000
    path = tmp_path / "deep.safetensors"
    path.write_bytes(encode(tensors_of(model), meta))
    with pytest.raises(ModelFileError, match=f"deep.safetensors: metadata '{key}' is not "
                                             "valid JSON .nested too deeply"):
        load_model(path)


def test_npz_with_an_unsupported_zip_version_is_a_data_format_error():
    # Found by fuzz_npz: zipfile raises NotImplementedError("zip file version 15.0").
    path = REGRESSIONS / "fuzz_npz" / "zip-version-15.npz"
    with pytest.raises(DataFormatError, match="zip-version-15.npz: not a readable .npz "
                                              "archive: zip file version"):
        load_npz(path)


def test_single_npy_with_a_malformed_header_is_refused_from_its_magic():
    # Found by fuzz_npz: np.load parsed the .npy header (tokenize.TokenError) of a file
    # that would have been refused anyway as "a single array"; now the magic decides.
    data = (REGRESSIONS / "fuzz_npz" / "npy-bad-header.npy").read_bytes()
    assert data.startswith(b"\x93NUMPY")
    with pytest.raises(DataFormatError, match="holds a single array, not an .npz archive"):
        load_npz(io.BytesIO(data))


@pytest.mark.parametrize("case, key", [("member-not-npy-y", "y"),
                                       ("member-not-npy-class-names", "class_names")])
def test_npz_member_that_is_not_an_npy_array_is_a_data_format_error(case, key):
    # Found by the campaign (fuzz_npz): a member whose bytes do not start with the .npy
    # magic comes back from np.load as bytes; _labels then failed on bytes.ndim.
    with pytest.raises(DataFormatError, match=f"'{key}' is not a NumPy array"):
        load_npz(REGRESSIONS / "fuzz_npz" / f"{case}.npz")


def test_npz_label_that_is_no_class_index_is_refused_not_a_huge_class_list():
    # Found by fuzz_npz (out of memory): a label of 1.5e16 without class_names made
    # load_npz build the names '0'..'14918173765664769'.
    with pytest.raises(DataFormatError, match="labels go up to 14918173765664769, which "
                                              "would make"):
        load_npz(REGRESSIONS / "fuzz_npz" / "huge-label.npz")
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((2, 3, 3), np.uint8), y=np.array([1, 2**63 + 5], np.uint64))
    buf.seek(0)
    with pytest.raises(DataFormatError, match="holds label 9223372036854775813 at index 1"):
        load_npz(buf)


@pytest.mark.parametrize("case, message", [
    ("huge-input-shape", r"input_shape \(2822+, 28, 1\) is [\d,]+ values per example"),
    ("huge-padding", r"layer 0 'zero_padding2d' \(ZeroPadding2D\) outputs \(1000+\d*, 9, 1\)"),
])
def test_spec_with_absurd_sizes_is_refused_before_it_runs(tmp_path, case, message):
    # Found by the campaign (fuzz_spec): an input of 2.8e70 rows, a padding of 1e91
    # rows: the spec built and NumPy failed later ("Maximum allowed dimension exceeded").
    with pytest.raises(SpecError, match=message):
        model_from_json(load_spec(REGRESSIONS / "fuzz_spec" / f"{case}.json"))


def test_npz_class_names_with_invalid_code_points_are_a_data_format_error():
    # Found by campaign 2 (fuzz_npz): a '<U1' array holding 0x2014E50 made NumPy's
    # tolist() raise SystemError.
    with pytest.raises(DataFormatError, match="'class_names' holds invalid Unicode"):
        load_npz(REGRESSIONS / "fuzz_npz" / "class-names-invalid-codepoint.npz")


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow on this input
def test_tiff_whose_exif_is_lost_on_decoding_keeps_the_probed_size():
    # Found by campaign 2 (fuzz_image): a TIFF's orientation (8) read from the header
    # was gone once Pillow decoded its malformed EXIF, so probe_image said 10x12 and
    # open_image returned 12x10. open_image now turns the picture by the header's value.
    from cnnlab.imageio import open_image, probe_image

    data = (REGRESSIONS / "fuzz_image" / "tiff-exif-lost-on-decode.tif").read_bytes()
    header = probe_image(data)
    assert open_image(data).size == (header.width, header.height) == (12, 10)


def test_the_regression_inputs_still_parse_the_same_way_as_valid_seeds():
    # Guard against a fix that refuses everything: a valid seed of each kind still loads.
    seed = next(p for p in (FUZZ / "corpus" / "fuzz_spec").iterdir()
                if p.read_bytes().startswith(b'{"class_name"'))
    model = model_from_json(json.loads(seed.read_bytes()))
    assert model.count_params() > 0


# ------------------------------------------------------------------- fuzzing runs


class _Run:
    """One harness subprocess, started at once; ``result()`` waits for it."""

    def __init__(self, harness: str, args: list[str], workdir: Path) -> None:
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        env.pop("CNNLAB_FUZZ_FINDINGS", None)  # test mode: a finding fails the run
        self.workdir = workdir
        self.log = open(workdir / "log.txt", "w+")  # noqa: SIM115 - closed in result()
        self.proc = subprocess.Popen([sys.executable, str(FUZZ / f"{harness}.py"), *args],
                                     env=env, cwd=ROOT, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def result(self, timeout: float = 300) -> tuple[int, str]:
        rc = self.proc.wait(timeout=timeout)
        self.log.seek(0)
        out = self.log.read()
        self.log.close()
        return rc, out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, _Run]:
    """Every short fuzzing run and every regression replay, started together: the
    fuzzing time is wall-clock time, so running them side by side keeps the whole
    file within its budget (about SECONDS plus the slowest start-up)."""
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (the 'test' extra)")
    started = {}
    for harness in HARNESSES:
        work = tmp_path_factory.mktemp(harness)
        (work / "corpus").mkdir()
        # A fixed seed: the same mutations every time (the time limit only cuts them short).
        started[f"fuzz {harness}"] = _Run(harness, [
            "-seed=18", f"-max_total_time={SECONDS}", "-timeout=20", "-rss_limit_mb=2048",
            f"-artifact_prefix={work}/", "-print_final_stats=1", str(work / "corpus"),
            str(FUZZ / "corpus" / harness)], work)
    for folder in sorted(REGRESSIONS.iterdir()):
        work = tmp_path_factory.mktemp(f"replay-{folder.name}")
        inputs = sorted(str(p) for p in folder.iterdir())
        started[f"replay {folder.name}"] = _Run(folder.name, inputs, work)
    return started


@pytest.mark.fuzz
@needs_atheris
@pytest.mark.parametrize("harness", HARNESSES)
def test_short_fuzzing_run_finds_nothing(harness, runs):
    run = runs[f"fuzz {harness}"]
    rc, out = run.result()
    assert rc == 0, out[-4000:]
    executions = int(re.findall(r"stat::number_of_executed_units: (\d+)", out)[-1])
    cov = max(int(c) for c in re.findall(r"cov: (\d+)", out))
    seeds = len(list((FUZZ / "corpus" / harness).iterdir()))
    assert executions > seeds, f"only {executions} executions"
    assert cov > 0
    assert not list(run.workdir.glob("crash-*")) and not list(run.workdir.glob("timeout-*"))


@pytest.mark.fuzz
@needs_atheris
@pytest.mark.parametrize("harness", sorted(p.name for p in REGRESSIONS.iterdir()))
def test_harness_replays_its_regressions_cleanly(harness, runs):
    rc, out = runs[f"replay {harness}"].result()
    assert rc == 0, out[-4000:]
    assert out.count("Executed ") == len(list((REGRESSIONS / harness).iterdir()))
