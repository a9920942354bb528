"""prepare_image / prepare_array: arbitrary pictures of digits -> MNIST-like 28x28 inputs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.datasets import read_idx
from cnnlab.datasets.mnist import BUNDLED_DIR
from cnnlab.errors import DataFormatError, ImageDecodeError, InvalidArgumentError, NoDigitError
from cnnlab.preprocess import prepare_array, prepare_image, scale_pixels, to_model_input

SAMPLES = list(range(12))  # first test digits: 7 2 1 0 4 1 4 9 5 9 0 6


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return read_idx(BUNDLED_DIR / "t10k-images-idx3-ubyte.gz")[: len(SAMPLES)]


def center_of_mass(img: np.ndarray) -> tuple[float, float]:
    idx = np.arange(img.shape[0])
    total = img.sum()
    return float(img.sum(axis=1) @ idx / total), float(img.sum(axis=0) @ idx / total)


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def rendered(digit: np.ndarray, size: int = 140, invert: bool = True) -> Image.Image:
    """An MNIST digit enlarged to ``size``, black on white unless ``invert`` is False."""
    pixels = 255 - digit if invert else digit
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.LANCZOS)


def assert_mnist_like(out: np.ndarray) -> None:
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 and out.max() > 0.9
    cy, cx = center_of_mass(out)
    assert abs(cy - 14) <= 1.0 and abs(cx - 14) <= 1.0, (cy, cx)
    ink = out > 0
    height = np.ptp(np.flatnonzero(ink.any(axis=1))) + 1
    width = np.ptp(np.flatnonzero(ink.any(axis=0))) + 1
    assert max(height, width) <= 22, (height, width)


def test_mnist_digit_as_large_black_on_white_png_comes_back(digits: np.ndarray) -> None:
    diffs = []
    for digit in digits:
        out = prepare_image(encode(rendered(digit), "PNG"))
        assert_mnist_like(out)
        diffs.append(np.abs(out - digit / 255.0).mean())
    assert max(diffs) < 0.1, diffs
    assert np.mean(diffs) < 0.05, diffs


def test_mnist_digit_is_a_fixed_point(digits: np.ndarray) -> None:
    # An MNIST digit is already prepared; preparing it again changes (almost) nothing:
    # at most a faint stray pixel outside the ink's bounding box is dropped.
    for digit in digits:
        diff = np.abs(prepare_array(digit) - digit / 255.0)
        assert diff.mean() < 1e-3 and diff.max() < 0.05


def test_jpeg_works(digits: np.ndarray) -> None:
    diffs = []
    for digit in digits:
        out = prepare_image(encode(rendered(digit, 200).convert("RGB"), "JPEG", quality=85))
        assert_mnist_like(out)
        diffs.append(np.abs(out - digit / 255.0).mean())
    assert np.mean(diffs) < 0.06, diffs


def test_noisy_grey_photo_like_jpeg(digits: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    diffs = []
    for digit in digits:
        page = np.asarray(rendered(digit, 300), dtype=np.float64) * 0.6 + 60
        page += rng.normal(0.0, 4.0, page.shape)
        img = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))
        out = prepare_image(encode(img, "JPEG", quality=70))
        assert_mnist_like(out)
        diffs.append(np.abs(out - digit / 255.0).mean())
    assert np.mean(diffs) < 0.06, diffs


def test_all_sources_take_one_code_path(tmp_path: Path, digits: np.ndarray) -> None:
    img = rendered(digits[0])
    path = tmp_path / "seven.png"
    img.save(path)
    expected = prepare_image(path)
    for source in (str(path), path.read_bytes(), bytearray(path.read_bytes()), img):
        np.testing.assert_array_equal(prepare_image(source), expected)
    np.testing.assert_array_equal(prepare_image(np.asarray(img)), expected)
    with open(path, "rb") as stream:
        np.testing.assert_array_equal(prepare_image(stream), expected)
    np.testing.assert_array_equal(prepare_array(np.asarray(img)), expected)


def test_white_on_black_is_not_inverted(digits: np.ndarray) -> None:
    black_on_white = prepare_image(rendered(digits[1]))
    white_on_black = prepare_image(rendered(digits[1], invert=False))
    np.testing.assert_allclose(white_on_black, black_on_white, atol=1e-5)


def canvas_rgba(digit: np.ndarray, stroke: tuple[int, int, int]) -> np.ndarray:
    """A transparent canvas with the digit drawn in ``stroke`` colour (ink in alpha)."""
    alpha = np.asarray(rendered(digit, 280, invert=False))
    rgba = np.zeros((*alpha.shape, 4), dtype=np.uint8)
    rgba[..., :3] = stroke
    rgba[..., 3] = alpha
    return rgba


@pytest.mark.parametrize("stroke", [(0, 0, 0), (255, 255, 255), (30, 60, 200)])
def test_transparent_canvas(digits: np.ndarray, stroke: tuple[int, int, int]) -> None:
    reference = prepare_image(rendered(digits[2], 280))
    rgba = canvas_rgba(digits[2], stroke)
    np.testing.assert_allclose(prepare_array(rgba), reference, atol=0.02)
    png = encode(Image.fromarray(rgba, mode="RGBA"), "PNG")
    np.testing.assert_allclose(prepare_image(png), reference, atol=0.02)


def test_transparent_pixels_colour_is_ignored(digits: np.ndarray) -> None:
    rgba = canvas_rgba(digits[3], (0, 0, 0))
    reference = prepare_array(rgba)
    rgba[..., :3][rgba[..., 3] == 0] = (255, 0, 255)  # hidden colour in transparent pixels
    np.testing.assert_allclose(prepare_array(rgba), reference, atol=1e-6)


def test_white_made_transparent_goes_back_on_white(digits: np.ndarray) -> None:
    # A palette PNG whose pure white is the transparent colour: the near-white
    # anti-aliasing around the strokes stays opaque and must not become ink.
    picture = rendered(digits[0], 112).convert("P")
    reference = prepare_image(picture)
    picture.info["transparency"] = 255
    png = encode(picture, "PNG")
    assert Image.open(io.BytesIO(png)).info.get("transparency") == 255
    np.testing.assert_allclose(prepare_image(png), reference, atol=0.02)


def test_transparent_margin_around_opaque_paper(digits: np.ndarray) -> None:
    paper = np.asarray(rendered(digits[7], 140).convert("RGB"))
    reference = prepare_array(paper)
    rgba = np.zeros((240, 240, 4), dtype=np.uint8)  # transparent black margin
    rgba[50:190, 50:190, :3] = paper
    rgba[50:190, 50:190, 3] = 255
    np.testing.assert_allclose(prepare_array(rgba), reference, atol=0.02)


def test_small_off_centre_digit_on_large_canvas_is_centred_and_scaled() -> None:
    canvas = np.full((300, 500), 255, dtype=np.uint8)
    canvas[20:70, 400:430] = 0  # a 50x30 block in the top-right corner
    out = prepare_array(canvas)
    rows = np.flatnonzero(out.max(axis=1) > 0.5)
    cols = np.flatnonzero(out.max(axis=0) > 0.5)
    assert np.ptp(rows) + 1 == 20 and np.ptp(cols) + 1 == 12  # aspect 5:3 kept
    cy, cx = center_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_thin_one_keeps_aspect_ratio() -> None:
    canvas = np.zeros((200, 200), dtype=np.float32)
    canvas[20:180, 95:105] = 1.0
    out = prepare_array(canvas)
    cols = np.flatnonzero(out.max(axis=0) > 0.5)
    rows = np.flatnonzero(out.max(axis=1) > 0.5)
    assert np.ptp(rows) + 1 == 20 and np.ptp(cols) + 1 <= 2


def test_exif_orientation_is_applied(digits: np.ndarray) -> None:
    upright = rendered(digits[4]).convert("RGB")
    reference = prepare_image(encode(upright, "PNG"))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored = upright.rotate(90, expand=True)  # stored counter-clockwise
    out = prepare_image(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert np.abs(out - reference).mean() < 0.03


@pytest.mark.parametrize(
    "arr",
    [
        np.full((50, 50), 255, np.uint8),
        np.zeros((50, 50), np.uint8),
        np.full((50, 50, 3), 128, np.uint8),
        np.zeros((50, 50, 4), np.uint8),
        np.full((50, 50), 0.97, np.float32),
    ],
    ids=["white", "black", "grey", "transparent", "near-white float"],
)
def test_blank_image_has_no_digit(arr: np.ndarray) -> None:
    with pytest.raises(NoDigitError, match="no digit found"):
        prepare_array(arr)
    source = encode(Image.fromarray(arr), "PNG") if arr.dtype == np.uint8 else arr
    with pytest.raises(NoDigitError, match="no digit found"):
        prepare_image(source)


def test_blank_noisy_jpeg_has_no_digit() -> None:
    rng = np.random.default_rng(1)
    page = np.clip(rng.normal(230, 3, (120, 160)), 0, 255).astype(np.uint8)
    with pytest.raises(NoDigitError, match="no digit found"):
        prepare_image(encode(Image.fromarray(page), "JPEG", quality=75))


def test_non_image_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture")
    with pytest.raises(ImageDecodeError, match="notes.png: cannot read the image"):
        prepare_image(path)
    with pytest.raises(ImageDecodeError, match="<bytes>"):
        prepare_image(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageDecodeError, match="nowhere.png"):
        prepare_image(tmp_path / "nowhere.png")


def test_errors_are_typed_data_format_errors_named_by_the_caller() -> None:
    assert issubclass(NoDigitError, DataFormatError)
    assert issubclass(ImageDecodeError, DataFormatError)
    assert not issubclass(NoDigitError, ImageDecodeError)
    with pytest.raises(ImageDecodeError, match=r"^'image': cannot read the image"):
        prepare_image(b"not a picture", name="'image'")
    with pytest.raises(NoDigitError, match=r"^'pixels': no digit found"):
        prepare_array(np.zeros((9, 9)), name="'pixels'")
    with pytest.raises(InvalidArgumentError, match=r"^canvas: .*0\.\.255"):
        prepare_array(np.full((9, 9), 300), name="canvas")


def test_truncated_png(tmp_path: Path, digits: np.ndarray) -> None:
    data = encode(rendered(digits[0]), "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="cut.png"):
        prepare_image(path)


@pytest.mark.parametrize(
    ("arr", "message"),
    [
        (np.zeros(10, np.uint8), "shape"),
        (np.zeros((10, 10, 5), np.uint8), "shape"),
        (np.zeros((0, 10), np.uint8), "empty"),
        (np.full((10, 10), np.nan), "NaN"),
        (np.full((10, 10), -1.0), r"\[0, 1\]"),
        (np.full((10, 10), 300, np.int32), "0..255"),
        (np.zeros((10, 10), np.complex64), "dtype"),
    ],
)
def test_bad_arrays(arr: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        prepare_array(arr)


def test_array_value_conventions(digits: np.ndarray) -> None:
    reference = prepare_array(digits[5])
    np.testing.assert_allclose(prepare_array(digits[5] / 255.0), reference, atol=1e-5)
    np.testing.assert_allclose(prepare_array(digits[5].astype(np.float32)), reference, atol=1e-5)
    np.testing.assert_allclose(prepare_array(digits[5][..., None]), reference, atol=1e-6)
    gray_alpha = np.stack([np.zeros_like(digits[5]), digits[5]], axis=-1)  # black ink in alpha
    np.testing.assert_allclose(prepare_array(gray_alpha), reference, atol=1e-5)
    assert_mnist_like(prepare_array(digits[5] > 127))


def test_unsupported_source_type() -> None:
    with pytest.raises(InvalidArgumentError, match="prepare_image"):
        prepare_image(42)  # type: ignore[arg-type]


def test_large_photo_is_fine(digits: np.ndarray) -> None:
    out = prepare_image(encode(rendered(digits[6], 1500).convert("RGB"), "JPEG", quality=80))
    assert_mnist_like(out)
    assert np.abs(out - digits[6] / 255.0).mean() < 0.06


def test_one_pixel_scaling_is_the_training_inputs() -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    expected = pixels.astype(np.float32) * np.float32(1.0 / 255.0)  # what training always fed
    scaled = scale_pixels(pixels)
    assert scaled.dtype == np.float32 and np.array_equal(scaled, expected)
    assert np.array_equal(scale_pixels(pixels.astype(np.float64)), expected)  # the API's pixels
    assert np.array_equal(to_model_input(pixels), expected[None, ..., None])
    assert scale_pixels(pixels, np.float64).dtype == np.float64
    assert scale_pixels(pixels)[15, 15] == 1.0 and scale_pixels(pixels)[0, 0] == 0.0
    source = pixels.astype(np.float32)
    scale_pixels(source)
    assert source[15, 15] == 255.0  # a new array, the input is untouched


def test_to_model_input_is_the_datasets_function() -> None:
    from cnnlab import datasets
    from cnnlab.datasets import mnist

    assert datasets.to_model_input is to_model_input is mnist.to_model_input
