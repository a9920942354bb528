"""Opening images safely (cnnlab.imageio) and loading labelled image folders
(cnnlab.datasets.images): every format and mode, the layout rules, bad files,
decompression bombs, the decode cache, and the stratified split."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab import imageio
from cnnlab.datasets import DataSplits, LabelledImages, load_image_folder
from cnnlab.datasets import images as images_module
from cnnlab.datasets.images import IndexedArray
from cnnlab.errors import (
    DataFormatError,
    ImageDecodeError,
    ImageTooLargeError,
    InvalidArgumentError,
)
from cnnlab.imageio import (
    is_color_mode,
    open_image,
    probe_image,
    resize_uint8,
    to_uint8_array,
)

# ----------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def save(path: Path, img: Image.Image, fmt: str | None = None, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **options)
    return path


def luma(r: int, g: int, b: int) -> int:
    """Pillow's L conversion, written out."""
    return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` 8-bit grey pixels (the
    pixel data is far too short: only the header may be read)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def exif_rotated_jpeg(width: int = 20, height: int = 9, orientation: int = 6) -> bytes:
    """A JPEG stored ``width`` x ``height``, left half white, right half black, whose
    EXIF says to display it rotated."""
    pixels = np.zeros((height, width), np.uint8)
    pixels[:, : width // 2] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.fromarray(pixels).convert("RGB"), "JPEG", quality=95,
                  exif=exif.tobytes())


def decode(data: bytes, color: str) -> np.ndarray:
    return to_uint8_array(open_image(data, name="test"), color)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def two_classes(root: Path, counts: tuple[int, int] = (3, 2), size: tuple[int, int] = (6, 5),
                values: tuple[int, int] = (40, 220)) -> Path:
    """``root/cats`` and ``root/dogs``: solid grey PNGs of ``size`` (width, height)."""
    for name, count, value in zip(("cats", "dogs"), counts, values, strict=True):
        for i in range(count):
            save(root / name / f"{i:03d}.png", Image.new("L", size, value))
    return root


# --------------------------------------------------------------------- imageio: modes


def test_grayscale_and_rgb_png_pixels_exact() -> None:
    gray = encode(Image.new("L", (5, 4), 77), "PNG")
    assert decode(gray, "grayscale").shape == (4, 5, 1)
    assert (decode(gray, "grayscale") == 77).all()
    assert (decode(gray, "rgb") == 77).all() and decode(gray, "rgb").shape == (4, 5, 3)
    rgb = encode(Image.new("RGB", (5, 4), (200, 10, 30)), "PNG")
    assert (decode(rgb, "rgb") == [200, 10, 30]).all()
    assert (decode(rgb, "grayscale") == luma(200, 10, 30)).all()
    assert luma(200, 10, 30) == 69  # 0.299 * 200 + 0.587 * 10 + 0.114 * 30 = 69.09


def test_jpeg_solid_colour_close_to_its_value() -> None:
    data = encode(Image.new("RGB", (16, 16), (30, 140, 220)), "JPEG", quality=95)
    out = decode(data, "rgb").astype(int)
    assert np.abs(out - [30, 140, 220]).max() <= 3


def test_sixteen_bit_png_scaled_to_eight_bits() -> None:
    values = np.array([[0, 1000, 25700, 65535]], dtype=np.uint16)
    img = open_image(encode(Image.fromarray(values), "PNG"), name="deep.png")
    assert img.mode == "I;16"
    assert decode(encode(Image.fromarray(values), "PNG"), "grayscale")[0, :, 0].tolist() == [
        0, 4, 100, 255,  # round(v / 257)
    ]
    assert not is_color_mode(img)


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (6, 4), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    img = open_image(data, name="anim.gif")
    assert is_color_mode(img)
    assert (to_uint8_array(img, "rgb") == [255, 0, 0]).all()


@pytest.mark.parametrize("fmt,options", [("WEBP", {"lossless": True}), ("TIFF", {}),
                                         ("PNG", {})])
def test_multi_frame_webp_tiff_png_give_their_first_frame(fmt: str, options: dict) -> None:
    frames = [Image.new("RGB", (6, 4), c) for c in [(9, 99, 199), (250, 0, 0)]]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], **options)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert (decode(data, "rgb") == [9, 99, 199]).all()


def test_grey_palette_is_grayscale_and_colour_palette_is_colour() -> None:
    grey_gif = open_image(encode(Image.new("L", (4, 4), 90), "GIF"), name="grey.gif")
    assert grey_gif.mode in ("P", "L") and not is_color_mode(grey_gif)
    assert (to_uint8_array(grey_gif, "grayscale") == 90).all()
    colour = Image.new("RGB", (4, 4), (10, 200, 30)).convert("P")
    png = open_image(encode(colour, "PNG"), name="pal.png")
    assert png.mode == "P" and is_color_mode(png)
    assert (to_uint8_array(png, "rgb") == np.asarray(colour.convert("RGB"))).all()


def test_rgba_is_composited_onto_black() -> None:
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = (200, 100, 50, 255)  # opaque: unchanged
    rgba[0, 1] = (200, 100, 50, 128)  # half: value * 128 / 255, rounded
    rgba[0, 2] = (200, 100, 50, 0)  # transparent: black
    out = decode(encode(Image.fromarray(rgba, "RGBA"), "PNG"), "rgb")
    assert out[0].tolist() == [[200, 100, 50], [100, 50, 25], [0, 0, 0]]
    gray = decode(encode(Image.fromarray(rgba, "RGBA"), "PNG"), "grayscale")
    assert gray[0, :, 0].tolist() == [luma(200, 100, 50), luma(100, 50, 25), 0]


def test_la_is_composited_onto_black() -> None:
    la = np.array([[[200, 255], [200, 128], [200, 0]]], np.uint8)
    out = decode(encode(Image.fromarray(la, "LA"), "PNG"), "grayscale")
    assert out[0, :, 0].tolist() == [200, 100, 0]


def test_palette_transparency_is_composited_onto_black() -> None:
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putdata([0, 1, 0])
    data = encode(img, "PNG", transparency=1)  # palette entry 1 (green) transparent
    assert (decode(data, "rgb")[0] == [[255, 0, 0], [0, 0, 0], [255, 0, 0]]).all()


def test_cmyk_jpeg_converted_to_rgb() -> None:
    data = encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=95)
    img = open_image(data, name="print.jpg")
    assert img.mode == "CMYK" and is_color_mode(img)
    out = to_uint8_array(img, "rgb")
    assert (out == np.asarray(img.convert("RGB"))).all()
    assert np.abs(out.astype(int) - [255, 0, 0]).max() <= 3


@pytest.mark.parametrize("fmt,options", [
    ("BMP", {}), ("WEBP", {"lossless": True}), ("TIFF", {}), ("PNG", {}),
])
def test_lossless_formats_are_exact(fmt: str, options: dict) -> None:
    pixels = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3) * 7
    out = decode(encode(Image.fromarray(pixels, "RGB"), fmt, **options), "rgb")
    assert (out == pixels).all()


def test_one_bit_float_and_int_modes() -> None:
    bits = Image.new("1", (3, 1))
    bits.putpixel((1, 0), 1)
    assert decode(encode(bits, "PNG"), "grayscale")[0, :, 0].tolist() == [0, 255, 0]
    floats = np.array([[-5.0, 0.4, 100.6, 300.0, np.nan]], np.float32)
    img = open_image(encode(Image.fromarray(floats, "F"), "TIFF"), name="f.tif")
    assert img.mode == "F" and not is_color_mode(img)
    assert to_uint8_array(img, "grayscale")[0, :, 0].tolist() == [0, 0, 101, 255, 0]
    ints = np.array([[-1, 0, 771, 70000]], np.int32)
    img = open_image(encode(Image.fromarray(ints, "I"), "TIFF"), name="i.tif")
    assert img.mode == "I"
    assert to_uint8_array(img, "grayscale")[0, :, 0].tolist() == [0, 0, 3, 255]


def test_exif_orientation_is_applied() -> None:
    data = exif_rotated_jpeg(width=20, height=9, orientation=6)
    assert Image.open(io.BytesIO(data)).size == (20, 9)  # stored landscape
    out = decode(data, "grayscale")
    assert out.shape == (20, 9, 1)  # displayed portrait: rotated 90 degrees clockwise
    assert out[:8].mean() > 200 and out[12:].mean() < 50  # the white left half is on top
    header = probe_image(data, name="phone.jpg")
    assert (header.height, header.width) == (20, 9) and header.format == "JPEG"


def test_open_image_reads_paths_and_file_objects(tmp_path: Path) -> None:
    path = save(tmp_path / "a.png", Image.new("L", (3, 2), 5))
    assert open_image(path).size == (3, 2)
    with open(path, "rb") as f:
        assert open_image(f).size == (3, 2)
        assert not f.closed
    with pytest.raises(InvalidArgumentError, match="expected a path, bytes"):
        open_image(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="color"):
        to_uint8_array(open_image(path), "rgba")  # type: ignore[arg-type]


def test_resize_uint8_is_bilinear_and_exact_on_solid_images() -> None:
    solid = np.full((13, 17, 3), (10, 20, 30), np.uint8)
    out = resize_uint8(solid, (9, 20))
    assert out.shape == (9, 20, 3) and (out == (10, 20, 30)).all()
    ramp = np.arange(4, dtype=np.uint8).reshape(1, 4, 1) * 60
    expect = np.asarray(Image.fromarray(ramp[..., 0]).resize((2, 1), Image.Resampling.BILINEAR))
    assert (resize_uint8(ramp, (1, 2))[..., 0] == expect).all()
    assert resize_uint8(solid, (13, 17)) is solid


# ------------------------------------------------------------------- imageio: errors


def test_truncated_and_fake_images_name_the_file(tmp_path: Path) -> None:
    whole = encode(Image.fromarray(np.arange(4096, dtype=np.uint16).reshape(64, 64)
                                   .astype(np.uint8)), "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageDecodeError, match=r"cut\.png: cannot read the image: corrupt or tr"):
        open_image(cut)
    fake = tmp_path / "notes.png"
    fake.write_text("not a picture")
    with pytest.raises(ImageDecodeError, match=r"notes\.png: .*not an image"):
        open_image(fake)
    with pytest.raises(ImageDecodeError, match=r"notes\.png: .*not an image"):
        probe_image(fake)
    with pytest.raises(ImageDecodeError, match=r"gone\.png: .*no such file"):
        open_image(tmp_path / "gone.png")


@pytest.mark.parametrize("side", [9000, 10000, 30000])
def test_decompression_bomb_refused_before_decoding(side: int) -> None:
    # 81 MP (over our limit), 100 MP (Pillow warns), 900 MP (Pillow raises): all ours.
    data = png_header_only(side, side)
    assert len(data) < 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape
        with pytest.raises(ImageTooLargeError, match=r"^bomb\.png: ") as info:
            open_image(data, name="bomb.png")
        with pytest.raises(ImageTooLargeError):
            probe_image(data, name="bomb.png")
    assert isinstance(info.value, ImageDecodeError) and isinstance(info.value, DataFormatError)
    if side == 9000:
        assert "9000x9000" in str(info.value) and "81.0 megapixels" in str(info.value)


def test_pixel_limit_is_the_module_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(Image.new("L", (20, 9), 3), "PNG")
    assert open_image(data).size == (20, 9)
    monkeypatch.setattr(imageio, "MAX_IMAGE_PIXELS", 179)
    with pytest.raises(ImageTooLargeError, match="20x9"):
        open_image(data, name="small.png")


# ------------------------------------------------------------------- folders: layout


def test_mixed_folder_sorted_classes_default_size_and_colour(tmp_path: Path,
                                                             cache: Path) -> None:
    root = tmp_path / "data"
    # Class folders created out of order; sizes given as (width, height).
    save(root / "zebra" / "a.png", Image.new("L", (13, 17), 10))
    save(root / "zebra" / "b.JPG", Image.new("L", (13, 17), 200), "JPEG", quality=95)
    save(root / "zebra" / "sub" / "c.bmp", Image.new("L", (20, 9), 60))
    save(root / "ant" / "a.gif", Image.new("RGB", (13, 17), (255, 0, 0)).convert("P"))
    save(root / "ant" / "b.webp", Image.new("RGB", (13, 17), (0, 0, 255)), lossless=True)
    save(root / "ant" / "c.tiff", Image.new("RGB", (20, 9), (0, 255, 0)))
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("loose file beside the classes")
    (root / "ant" / ".DS_Store").write_bytes(b"hidden")  # ignored, not counted
    (root / ".git").mkdir()
    save(root / ".git" / "x.png", Image.new("L", (3, 3)))  # a hidden folder: ignored

    data = load_image_folder(root, cache_dir=cache, progress=False)
    assert isinstance(data, DataSplits) and data.test is None
    assert data.class_names == ["ant", "zebra"]
    assert data.train.x.shape == (6, 17, 13, 3)  # most common size, colour (one image is)
    assert data.train.y.tolist() == [0, 0, 0, 1, 1, 1] and data.train.y.dtype == np.int64
    assert data.train.files == ["ant/a.gif", "ant/b.webp", "ant/c.tiff",
                                "zebra/a.png", "zebra/b.JPG", "zebra/sub/c.bmp"]
    assert data.skipped_files == 2 and data.skipped_bad == []
    x = data.train.x
    assert (x[0] == [255, 0, 0]).all() and (x[1] == [0, 0, 255]).all()
    assert (x[2] == [0, 255, 0]).all()  # resized from 20x9: a solid image stays solid
    assert (x[3] == 10).all() and (x[5] == 60).all()
    assert np.abs(x[4].astype(int) - 200).max() <= 2
    assert data.num_classes == 2 and data.image_shape == (17, 13, 3)
    assert str(root) in data.source and "6 training" in data.source


def test_default_size_ties_go_to_the_larger_area(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "d"
    for i, size in enumerate([(10, 10), (10, 10), (12, 8), (12, 8)]):
        save(root / ("a" if i % 2 else "b") / f"{i}.png", Image.new("L", size, 50))
    data = load_image_folder(root, cache_dir=cache, progress=False)
    assert data.train.x.shape == (4, 10, 10, 1)  # 100 pixels beat 96
    assert (data.train.x[:] == 50).all()


def test_default_size_counts_exif_orientation(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "d"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        (root / label / "phone.jpg").write_bytes(exif_rotated_jpeg(20, 9, 6))
    save(root / "a" / "landscape.png", Image.new("L", (20, 9)))
    data = load_image_folder(root, cache_dir=cache, progress=False)
    assert data.train.x.shape == (3, 20, 9, 3)  # two portraits (H 20, W 9) beat one


def test_explicit_size_and_colour(tmp_path: Path, cache: Path) -> None:
    root = two_classes(tmp_path / "d")
    data = load_image_folder(root, image_size=(7, 11), color="rgb", cache_dir=cache,
                             progress=False)
    assert data.train.x.shape == (5, 7, 11, 3)
    assert (data.train.x[:3] == 40).all() and (data.train.x[3:] == 220).all()
    gray = load_image_folder(root, cache_dir=cache, progress=False)
    assert gray.train.x.shape == (5, 5, 6, 1)  # grey images: one channel by default


def test_train_and_test_parts(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "d"
    two_classes(root / "train", counts=(3, 2))
    two_classes(root / "test", counts=(1, 2), values=(41, 221))
    data = load_image_folder(root, cache_dir=cache, progress=False)
    assert data.class_names == ["cats", "dogs"]
    assert data.train.y.tolist() == [0, 0, 0, 1, 1]
    assert data.test is not None and data.test.y.tolist() == [0, 1, 1]
    assert (data.test.x[0] == 41).all() and (data.test.x[1:] == 221).all()
    assert data.test.files == ["test/cats/000.png", "test/dogs/000.png", "test/dogs/001.png"]
    assert "5 training + 3 test" in data.source


def test_train_and_test_with_different_classes_name_both(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "d"
    two_classes(root / "train")
    save(root / "test" / "cats" / "0.png", Image.new("L", (4, 4)))
    save(root / "test" / "birds" / "0.png", Image.new("L", (4, 4)))
    with pytest.raises(DataFormatError, match=r"train/ has \['cats', 'dogs'\], "
                                              r"test/ has \['birds', 'cats'\]"):
        load_image_folder(root, cache_dir=cache, progress=False)


def test_train_test_beside_another_image_folder_is_ambiguous(tmp_path: Path,
                                                             cache: Path) -> None:
    root = tmp_path / "d"
    two_classes(root / "train")
    two_classes(root / "test")
    two_classes(root / "validation")
    with pytest.raises(DataFormatError, match="train/ and test/ but also validation"):
        load_image_folder(root, cache_dir=cache, progress=False)


def test_layout_errors_name_the_folder(tmp_path: Path, cache: Path) -> None:
    def load(path: Path) -> DataSplits:
        return load_image_folder(path, cache_dir=cache, progress=False)

    with pytest.raises(DataFormatError, match=r"nowhere: no such folder"):
        load(tmp_path / "nowhere")
    flat = tmp_path / "flat"
    save(flat / "a.png", Image.new("L", (4, 4)))
    with pytest.raises(DataFormatError, match=r"flat: no class subfolders"):
        load(flat)
    with pytest.raises(DataFormatError, match=r"a\.png: not a folder"):
        load(flat / "a.png")
    no_images = tmp_path / "no_images"
    (no_images / "a").mkdir(parents=True)
    (no_images / "b").mkdir()
    (no_images / "b" / "notes.txt").write_text("text")
    with pytest.raises(DataFormatError, match=r"no_images: no images in its class folders"):
        load(no_images)
    empty = two_classes(tmp_path / "empty")
    (empty / "zz_empty").mkdir()
    with pytest.raises(DataFormatError, match=r"empty class folder .*zz_empty"):
        load(empty)
    single = tmp_path / "single"
    save(single / "only" / "a.png", Image.new("L", (4, 4)))
    with pytest.raises(DataFormatError, match=r"only one class folder \(only\)"):
        load(single)
    assert cache_files(cache) == []


def test_huge_usual_size_asks_for_image_size(tmp_path: Path, cache: Path) -> None:
    root = tmp_path / "d"
    for label in ("a", "b"):
        save(root / label / "wide.png", Image.new("L", (5000, 2), 7))
    with pytest.raises(DataFormatError, match=r"most common size, 2x5000 .* image_size="):
        load_image_folder(root, cache_dir=cache, progress=False)
    data = load_image_folder(root, image_size=(2, 50), cache_dir=cache, progress=False)
    assert data.train.x.shape == (2, 2, 50, 1) and (data.train.x[:] == 7).all()


def test_cache_dir_must_be_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidArgumentError, match=r"cache_dir .*file is a file"):
        load_image_folder(two_classes(tmp_path / "d"), cache_dir=tmp_path / "file",
                          progress=False)


@pytest.mark.parametrize("size", [(0, 5), (5, -1), (3,), 28, (2.5, 3), (True, 3), "28x28"])
def test_bad_image_size_is_an_argument_error(tmp_path: Path, size: object) -> None:
    with pytest.raises(InvalidArgumentError, match=r"image_size must be two positive ints"):
        load_image_folder(two_classes(tmp_path / "d"), image_size=size,  # type: ignore[arg-type]
                          cache_dir=tmp_path / "c", progress=False)


def test_absurd_image_size_names_the_value(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"image_size \(5000, 10\) is absurd.*4096"):
        load_image_folder(two_classes(tmp_path / "d"), image_size=(5000, 10),
                          cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(InvalidArgumentError, match=r"color must be"):
        load_image_folder(two_classes(tmp_path / "e"), color="rgba",  # type: ignore[arg-type]
                          cache_dir=tmp_path / "c", progress=False)


# ---------------------------------------------------------------------- folders: bad


def add_bad_images(root: Path) -> None:
    whole = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)),
                   "PNG")
    (root / "cats" / "cut.png").write_bytes(whole[: len(whole) // 2])  # header fine, data cut
    (root / "dogs" / "fake.png").write_text("this is text")


@pytest.mark.parametrize("given", [False, True], ids=["inferred", "given"])
def test_bad_images_raise_naming_the_file_or_are_skipped(tmp_path: Path, cache: Path,
                                                         given: bool) -> None:
    root = two_classes(tmp_path / "d")
    add_bad_images(root)
    options = {"image_size": (5, 6), "color": "grayscale"} if given else {}
    # Inferring size and colour reads every header first: the text file fails there;
    # with both given, the files are decoded in order and the cut one fails first.
    first = r"cats/cut\.png: cannot read the image: corrupt or truncated" if given else (
        r"dogs/fake\.png: cannot read the image: not an image")
    with pytest.raises(ImageDecodeError, match=first):
        load_image_folder(root, cache_dir=cache, progress=False, **options)
    assert cache_files(cache) == []  # nothing half-written left behind
    data = load_image_folder(root, cache_dir=cache, progress=False, skip_bad=True, **options)
    assert data.skipped_bad == ["cats/cut.png", "dogs/fake.png"]
    assert data.train.x.shape == (5, 5, 6, 1)
    assert data.train.y.tolist() == [0, 0, 0, 1, 1]
    assert "cats/cut.png" not in data.train.files
    assert (data.train.x[:3] == 40).all() and (data.train.x[3:] == 220).all()
    assert all(name.endswith((".npy", ".json")) for name in cache_files(cache))


def test_a_decompression_bomb_in_a_folder(tmp_path: Path, cache: Path) -> None:
    root = two_classes(tmp_path / "d")
    (root / "dogs" / "bomb.png").write_bytes(png_header_only(30000, 30000))
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png"):
        load_image_folder(root, cache_dir=cache, progress=False)
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png"):
        load_image_folder(root, image_size=(5, 6), color="rgb", cache_dir=cache, progress=False)
    data = load_image_folder(root, cache_dir=cache, progress=False, skip_bad=True)
    assert data.skipped_bad == ["dogs/bomb.png"] and len(data.train) == 5


def test_a_class_whose_images_are_all_bad(tmp_path: Path, cache: Path) -> None:
    root = two_classes(tmp_path / "d")
    (root / "birds").mkdir()
    (root / "birds" / "fake.jpg").write_text("text")
    with pytest.raises(DataFormatError, match=r"every image of class birds is unreadable"):
        load_image_folder(root, cache_dir=cache, progress=False, skip_bad=True)


# --------------------------------------------------------------------- folders: cache


def test_second_load_does_not_decode(tmp_path: Path, cache: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = two_classes(tmp_path / "d")
    first = load_image_folder(root, cache_dir=cache, progress=False)
    assert len(cache_files(cache)) == 2  # <key>.npy and <key>.json, no temporary file

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(imageio, "open_image", refuse)
    monkeypatch.setattr(imageio, "probe_image", refuse)
    second = load_image_folder(root, cache_dir=cache, progress=False)
    assert (np.asarray(second.train.x) == np.asarray(first.train.x)).all()
    assert second.train.y.tolist() == first.train.y.tolist()
    assert second.train.files == first.train.files and second.class_names == first.class_names


def test_changed_file_or_option_makes_a_new_key(tmp_path: Path, cache: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    root = two_classes(tmp_path / "d")
    decoded: list[str] = []
    real = images_module._decode

    def counting(path: Path, *args: object) -> np.ndarray:
        decoded.append(Path(path).name)
        return real(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(images_module, "_decode", counting)
    load_image_folder(root, cache_dir=cache, progress=False)
    assert len(decoded) == 5
    load_image_folder(root, cache_dir=cache, progress=False)
    assert len(decoded) == 5  # cached
    target = root / "dogs" / "000.png"
    save(target, Image.new("L", (6, 5), 99))
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    changed = load_image_folder(root, cache_dir=cache, progress=False)
    assert len(decoded) == 10 and (changed.train.x[3] == 99).all()
    load_image_folder(root, color="rgb", cache_dir=cache, progress=False)
    load_image_folder(root, skip_bad=True, cache_dir=cache, progress=False)
    assert len(decoded) == 20
    names = cache_files(cache)
    assert len(names) == 8 and all(n.endswith((".npy", ".json")) for n in names)


def test_half_written_cache_is_never_used(tmp_path: Path, cache: Path) -> None:
    root = two_classes(tmp_path / "d")
    first = np.array(load_image_folder(root, cache_dir=cache, progress=False).train.x)
    (npy,) = cache.glob("*.npy")
    (sidecar,) = cache.glob("*.json")
    head = npy.read_bytes()[:100]
    npy.unlink()  # a new file: the old one may still be mapped
    npy.write_bytes(head)  # truncated pixels, sidecar intact
    again = load_image_folder(root, cache_dir=cache, progress=False)
    assert (np.asarray(again.train.x) == first).all()
    sidecar.unlink()  # pixels there, but no sidecar: a crash before it was written
    again = load_image_folder(root, cache_dir=cache, progress=False)
    assert (np.asarray(again.train.x) == first).all()
    assert sidecar.exists()


def test_default_cache_dir_follows_cnnlab_cache(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "env"))
    load_image_folder(two_classes(tmp_path / "d"), progress=False)
    assert len(list((tmp_path / "env" / "images").glob("*.npy"))) == 1


def test_images_come_back_as_a_read_only_memmap(tmp_path: Path, cache: Path) -> None:
    data = load_image_folder(two_classes(tmp_path / "d"), cache_dir=cache, progress=False)
    x = data.train.x
    assert isinstance(x, np.memmap) and x.dtype == np.uint8 and not x.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        x[0, 0, 0, 0] = 1
    assert Path(x.filename).parent == cache.resolve()


def test_progress_bar_goes_to_stderr(tmp_path: Path, cache: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    load_image_folder(two_classes(tmp_path / "d"), cache_dir=cache, progress=True)
    assert "Decoding images" in capsys.readouterr().err
    load_image_folder(two_classes(tmp_path / "e"), cache_dir=cache, progress=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------ split


def labelled(counts: list[int]) -> LabelledImages:
    y = np.repeat(np.arange(len(counts)), counts)
    rng = np.random.default_rng(1)
    y = y[rng.permutation(len(y))]
    x = np.arange(len(y), dtype=np.uint8).reshape(-1, 1, 1, 1)
    return LabelledImages(x, y, [f"f{i}" for i in range(len(y))])


def test_split_is_stratified_disjoint_and_complete() -> None:
    part = labelled([10, 7, 3, 1, 2])
    kept, held = part.split(0.2, seed=3)
    # round half up of 0.2 * count, at least one per class of two or more, never all
    assert np.bincount(held.y, minlength=5).tolist() == [2, 1, 1, 0, 1]
    assert np.bincount(kept.y, minlength=5).tolist() == [8, 6, 2, 1, 1]
    kept_idx, held_idx = kept.x.indices, held.x.indices
    assert not set(kept_idx) & set(held_idx)
    assert sorted(np.concatenate([kept_idx, held_idx]).tolist()) == list(range(len(part)))
    assert (np.diff(kept_idx) > 0).all() and (np.diff(held_idx) > 0).all()  # sorted
    assert (held.y == part.y[held_idx]).all()
    assert held.files == [part.files[i] for i in held_idx]
    assert (np.asarray(held.x)[:, 0, 0, 0] == held_idx).all()


def test_split_is_deterministic_for_a_seed() -> None:
    part = labelled([50, 50])
    a = part.split(0.3, seed=7)[1].x.indices
    b = part.split(0.3, seed=7)[1].x.indices
    c = part.split(0.3, seed=8)[1].x.indices
    assert (a == b).all() and len(a) == 30 and not (a == c).all()


def test_split_is_lazy_over_the_memmap(tmp_path: Path, cache: Path) -> None:
    data = load_image_folder(two_classes(tmp_path / "d", counts=(6, 4)), cache_dir=cache,
                             progress=False)
    kept, held = data.train.split(0.5, seed=0)
    assert isinstance(held.x, IndexedArray) and held.x.base is data.train.x
    assert held.x.shape == (5, 5, 6, 1) and held.x.dtype == np.uint8 and len(held.x) == 5
    assert np.bincount(held.y).tolist() == [3, 2]
    batch = held.x[np.array([0, 4])]
    assert batch.shape == (2, 5, 6, 1) and type(batch) is np.ndarray
    assert (batch == np.asarray(data.train.x)[held.x.indices[[0, 4]]]).all()
    assert held.x[1, 0, 0, 0] == data.train.x[held.x.indices[1], 0, 0, 0]
    inner_kept, inner_held = kept.split(0.4, seed=1)  # a split of a split: same base
    assert inner_held.x.base is data.train.x
    assert set(inner_held.x.indices) <= set(kept.x.indices)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, True, "0.2"])
def test_split_fraction_must_lie_strictly_between_0_and_1(fraction: object) -> None:
    with pytest.raises(InvalidArgumentError, match="fraction must be a number strictly"):
        labelled([3, 3]).split(fraction, seed=0)  # type: ignore[arg-type]
