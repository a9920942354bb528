"""Seeded data augmentation (cnnlab.datasets.augment): exact numbers, draws, parsing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cnnlab.datasets.augment import (
    DEFAULT_ROTATION,
    DEFAULT_SHIFT,
    Augment,
    bilinear_sample,
    flip_horizontal,
    rotate,
    translate,
)
from cnnlab.errors import InvalidArgumentError


def _batch(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


# -- the transforms, exactly ------------------------------------------------------------


@pytest.mark.parametrize("dy, dx", [(2, 0), (0, 3), (-1, 2), (3, -2), (-4, -4), (0, 0)])
def test_translate_moves_a_pattern_by_exactly_k_pixels_with_zero_fill(dy: int, dx: int) -> None:
    h, w = 7, 8
    x = (np.arange(h * w * 2, dtype=np.float32) + 1).reshape(1, h, w, 2) / (h * w * 2)
    out = translate(x, [[dy, dx]])
    for y in range(h):
        for c in range(w):
            sy, sc = y - dy, c - dx
            inside = 0 <= sy < h and 0 <= sc < w
            expected = x[0, sy, sc] if inside else np.zeros(2, np.float32)
            np.testing.assert_array_equal(out[0, y, c], expected)
    # Exactly (h - |dy|) * (w - |dx|) pixels survive; the rest are 0.
    assert np.count_nonzero(out[0, :, :, 0]) == (h - abs(dy)) * (w - abs(dx))


def test_translate_by_the_whole_frame_or_more_leaves_zeros() -> None:
    x = np.ones((3, 4, 5, 1), np.float32)
    out = translate(x, [[4, 0], [0, -5], [-9, 9]])
    assert out.dtype == np.float32 and np.all(out == 0.0)


def test_translate_each_image_by_its_own_offset() -> None:
    x = np.zeros((2, 5, 5, 1), np.float32)
    x[:, 2, 2, 0] = 1.0
    out = translate(x, [[1, -2], [-2, 1]])
    assert out[0, 3, 0, 0] == 1.0 and out[0].sum() == 1.0
    assert out[1, 0, 3, 0] == 1.0 and out[1].sum() == 1.0


def test_flip_equals_reversing_the_width_axis() -> None:
    x = _batch((4, 5, 6, 3))
    np.testing.assert_array_equal(flip_horizontal(x, np.ones(4, bool)), x[:, :, ::-1])
    np.testing.assert_array_equal(flip_horizontal(x, np.zeros(4, bool)), x)
    mixed = flip_horizontal(x, [True, False, False, True])
    np.testing.assert_array_equal(mixed[[0, 3]], x[[0, 3], :, ::-1])
    np.testing.assert_array_equal(mixed[[1, 2]], x[[1, 2]])


@pytest.mark.parametrize("shape", [(3, 28, 28, 1), (2, 32, 32, 3), (2, 5, 9, 2)])
def test_rotation_by_zero_degrees_is_the_identity_bit_for_bit(shape: tuple[int, ...]) -> None:
    x = _batch(shape)
    out = rotate(x, np.zeros(shape[0]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.view(np.uint32), x.view(np.uint32))


@pytest.mark.parametrize("angle, k", [(90.0, 1), (-90.0, -1), (180.0, 2), (-180.0, 2)])
@pytest.mark.parametrize("size", [4, 5, 28])
def test_rotation_by_right_angles_equals_rot90(angle: float, k: int, size: int) -> None:
    x = _batch((2, size, size, 3))
    expected = np.rot90(x, k, axes=(1, 2))
    np.testing.assert_allclose(rotate(x, [angle, angle]), expected, rtol=0, atol=1e-5)


def test_positive_angle_turns_counter_clockwise_as_displayed() -> None:
    # Row 0 at the top: a dot at the top right goes to the top left under +90 degrees
    # (counter-clockwise), to the bottom right under -90 degrees (clockwise).
    x = np.zeros((1, 5, 5, 1), np.float32)
    x[0, 0, 4, 0] = 1.0
    ccw = rotate(x, [90.0])[0, :, :, 0]
    cw = rotate(x, [-90.0])[0, :, :, 0]
    assert np.unravel_index(np.argmax(ccw), ccw.shape) == (0, 0)
    assert np.unravel_index(np.argmax(cw), cw.shape) == (4, 4)
    assert ccw.max() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("angle", [7.5, -23.0, 30.0, 45.0])
def test_rotation_of_a_constant_image_keeps_the_interior_constant(angle: float) -> None:
    size, value = 28, 0.75
    x = np.full((1, size, size, 2), value, np.float32)
    out = rotate(x, [angle])[0]
    centre = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    # A rotation keeps distances to the centre: within the inscribed circle every
    # sample point lies inside the image, where bilinear weights sum to 1.
    interior = np.hypot(yy - centre, xx - centre) <= centre
    np.testing.assert_allclose(out[interior], value, rtol=0, atol=1e-6)
    assert out.max() <= value and out.min() >= 0.0
    # A corner's sample point lies outside the image (at 45 degrees, 5.6 pixels out):
    # the area moved in is filled with 0.
    if abs(angle) >= 30:
        assert np.all(out[0, 0] == 0.0) and np.all(out[-1, -1] == 0.0)


def test_bilinear_at_half_pixel_offsets_matches_hand_computed_values() -> None:
    img = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]], np.float32)
    x = np.stack([img, 1 - img], axis=-1)[None]  # (1, 3, 3, 2)
    rows = np.array([[[0.5, 0.5, 1.0, -0.5, 2.5, 1.5, -1.0]]])
    cols = np.array([[[0.5, 1.0, 1.5, 0.0, 2.5, 0.25, 1.0]]])
    out = bilinear_sample(x, rows, cols)[0, 0]
    expected = np.array([
        (0.1 + 0.2 + 0.4 + 0.5) / 4,  # centre of four pixels
        (0.2 + 0.5) / 2,  # between two rows
        (0.5 + 0.6) / 2,  # between two columns
        0.1 / 2,  # half a pixel above the image: half of it is the zero fill
        0.9 / 4,  # half a pixel beyond the bottom-right corner, both ways
        0.5 * (0.75 * 0.4 + 0.25 * 0.5) + 0.5 * (0.75 * 0.7 + 0.25 * 0.8),
        0.0,  # a whole pixel outside
    ])
    np.testing.assert_allclose(out[:, 0], expected, rtol=0, atol=1e-7)
    inside = [0, 1, 2, 5]  # the second channel, 1 - img, where no zero fill enters
    np.testing.assert_allclose(out[inside, 1], 1 - expected[inside], rtol=0, atol=1e-7)


def test_bilinear_at_and_beyond_the_edges() -> None:
    x = _batch((2, 4, 5, 3))
    rows = np.array([[[3.0, 4.0, 3.5, 1e6, -1e6, -1.0]]] * 2)
    cols = np.array([[[4.0, 4.0, 4.0, 2.0, 2.0, -1.0]]] * 2)
    out = bilinear_sample(x, rows, cols)
    np.testing.assert_array_equal(out[:, 0, 0], x[:, 3, 4])  # the last pixel, exactly
    np.testing.assert_array_equal(out[:, 0, [1, 3, 4, 5]], 0.0)  # a pixel or more outside
    np.testing.assert_allclose(out[:, 0, 2], x[:, 3, 4] / 2, rtol=0, atol=1e-7)


def test_rotation_by_45_degrees_matches_hand_computed_bilinear_values() -> None:
    img = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]], np.float32)
    out = rotate(img.reshape(1, 3, 3, 1), [45.0])[0, :, :, 0]
    s = math.sqrt(0.5)
    # out[0, 0]: offset (v, u) = (-1, -1) samples row 1 - 2s = -0.414, col 1: a
    # fraction 2 - sqrt(2) of pixel (0, 1), the rest from the zero fill above it.
    assert out[0, 0] == pytest.approx((2 - math.sqrt(2)) * 0.2, abs=1e-7)
    # out[0, 1]: (v, u) = (-1, 0) samples row 1 - s, col 1 + s.
    a, b = 1 - s, s
    expected = ((1 - a) * (1 - b) * 0.2 + (1 - a) * b * 0.3
                + a * (1 - b) * 0.5 + a * b * 0.6)
    assert out[0, 1] == pytest.approx(expected, abs=1e-7)
    assert out[1, 1] == pytest.approx(0.5, abs=1e-7)  # the centre stays put


def test_flip_folded_into_rotation_equals_flipping_first() -> None:
    x = _batch((6, 12, 10, 3))
    flips = np.array([True, False, True, True, False, False])
    angles = np.array([10.0, -5.0, 33.0, -40.0, 0.0, 12.0])
    np.testing.assert_allclose(rotate(x, angles, flips),
                               rotate(flip_horizontal(x, flips), angles), rtol=0, atol=1e-6)


def test_rotation_is_independent_of_the_block_size() -> None:
    # 60 images of 28x28: several blocks of BLOCK_PIXELS pixels, the last one short.
    x = _batch((60, 28, 28, 2))
    angles = np.linspace(-45, 45, 60)
    out = rotate(x, angles)
    for i in (0, 19, 20, 21, 59):
        np.testing.assert_array_equal(out[i], rotate(x[i:i + 1], angles[i:i + 1])[0])


# -- Augment: draws, order, reproducibility ----------------------------------------------


def test_same_seed_same_output_different_seeds_differ() -> None:
    x = _batch((16, 28, 28, 1))
    aug = Augment(shift=0.1, rotation=10.0, flip=True)
    a = aug(x, np.random.default_rng(123))
    b = aug(x, np.random.default_rng(123))
    c = aug(x, np.random.default_rng(124))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_a_restored_generator_continues_identically() -> None:
    x = _batch((8, 32, 32, 3))
    aug = Augment.parse("shift,rotate,flip")
    rng = np.random.default_rng(7)
    aug(x, rng)
    saved = json.loads(json.dumps(rng.bit_generator.state))  # as a checkpoint stores it
    second = aug(x, rng)
    resumed = np.random.default_rng()
    resumed.bit_generator.state = saved
    np.testing.assert_array_equal(aug(x, resumed), second)


@pytest.mark.parametrize("spec", ["flip", "rotate", "shift", "shift,flip", "rotate,shift",
                                  "shift,rotate,flip", "none"])
def test_draws_are_made_only_for_enabled_transforms_in_the_documented_order(spec: str) -> None:
    n, h, w = 10, 28, 32
    x = _batch((n, h, w, 1))
    aug = Augment.parse(spec)
    rng = np.random.default_rng(99)
    out = aug(x, rng)
    replica = np.random.default_rng(99)
    flips = replica.random(n) < 0.5 if aug.flip else None
    angles = replica.uniform(-aug.rotation, aug.rotation, n) if aug.rotation else None
    offsets = replica.integers([-2, -3], [3, 4], (n, 2)) if aug.shift else None
    assert _state(rng) == _state(replica)
    # The same parameters, applied flip -> rotate -> shift, give the same images.
    expected = x
    if flips is not None:
        expected = flip_horizontal(expected, flips)
    if angles is not None:
        expected = rotate(expected, angles)
    if offsets is not None:
        expected = translate(expected, offsets)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


def test_flip_only_draws_exactly_n_uniforms() -> None:
    rng = np.random.default_rng(5)
    Augment(flip=True)(_batch((13, 4, 4, 1)), rng)
    replica = np.random.default_rng(5)
    replica.random(13)
    assert _state(rng) == _state(replica)
    assert rng.random() == replica.random()


def test_nothing_enabled_draws_nothing_and_copies() -> None:
    x = _batch((3, 6, 6, 2))
    rng = np.random.default_rng(1)
    before = _state(rng)
    out = Augment()(x, rng)
    assert _state(rng) == before
    np.testing.assert_array_equal(out, x)
    assert not np.shares_memory(out, x)


def test_the_order_is_flip_then_rotate_then_shift() -> None:
    x = _batch((4, 16, 16, 1))
    aug = Augment(shift=0.2, rotation=30.0, flip=True)
    params = aug.draw(np.random.default_rng(3), 4, 16, 16)
    out = aug(x, np.random.default_rng(3))
    ordered = translate(rotate(flip_horizontal(x, params.flips), params.angles), params.offsets)
    np.testing.assert_allclose(out, ordered, rtol=0, atol=1e-6)
    other = flip_horizontal(rotate(translate(x, params.offsets), params.angles), params.flips)
    assert np.abs(out - other).max() > 0.1  # the order matters, and the test can tell


def test_drawn_parameters_cover_their_ranges() -> None:
    aug = Augment(shift=0.1, rotation=10.0, flip=True)
    p = aug.draw(np.random.default_rng(0), 4000, 28, 32)
    assert aug.max_shift(28, 32) == (2, 3)
    assert set(p.offsets[:, 0].tolist()) == {-2, -1, 0, 1, 2}
    assert set(p.offsets[:, 1].tolist()) == {-3, -2, -1, 0, 1, 2, 3}
    assert p.angles.min() >= -10.0 and p.angles.max() <= 10.0
    assert p.angles.min() < -9.9 and p.angles.max() > 9.9
    assert 0.45 < p.flips.mean() < 0.55
    assert p.flips.dtype == bool and p.offsets.dtype == np.int64


def test_max_shift_floors_the_fraction_of_each_side() -> None:
    assert Augment(shift=0.3).max_shift(10, 20) == (3, 6)  # 0.3 * 10 = 2.9999999999999996
    assert Augment(shift=0.1).max_shift(9, 5) == (0, 0)


# -- the arrays: input untouched, dtype, shape, range -------------------------------------


@pytest.mark.parametrize("spec", ["flip", "rotate=45", "shift=0.4", "shift,rotate,flip", "none"])
def test_input_untouched_read_only_ok_float32_same_shape_values_in_range(spec: str) -> None:
    x = _batch((12, 28, 28, 1))
    x[:4] = 1.0  # full-white images: interpolation must not overshoot 1
    x.setflags(write=False)
    before = x.copy()
    out = Augment.parse(spec)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(x, before)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert out.flags.writeable and not np.shares_memory(out, x)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_float64_views_and_empty_batches() -> None:
    x64 = _batch((4, 10, 10, 3)).astype(np.float64)
    view = x64[:, ::-1, :, 1:]  # non-contiguous, read-only slice
    view.setflags(write=False)
    out = Augment(shift=0.1, rotation=20.0, flip=True)(view, np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == (4, 10, 10, 2)
    empty = Augment(shift=0.1, rotation=20.0, flip=True)(
        np.zeros((0, 8, 8, 1), np.float32), np.random.default_rng(0))
    assert empty.shape == (0, 8, 8, 1) and empty.dtype == np.float32


def test_bad_batch_or_rng_is_named() -> None:
    aug = Augment(flip=True)
    with pytest.raises(InvalidArgumentError, match=r"batch must be a 4-D .* got shape \(28, 28\)"):
        aug(np.zeros((28, 28), np.float32), np.random.default_rng())
    with pytest.raises(InvalidArgumentError, match="batch must hold floats.*uint8"):
        aug(np.zeros((1, 2, 2, 1), np.uint8), np.random.default_rng())
    with pytest.raises(InvalidArgumentError, match="rng must be a numpy.random.Generator.*int"):
        aug(np.zeros((1, 2, 2, 1), np.float32), 0)
    with pytest.raises(InvalidArgumentError, match=r"angles must have shape \(2,\)"):
        rotate(np.zeros((2, 3, 3, 1), np.float32), [1.0])
    with pytest.raises(InvalidArgumentError, match=r"offsets must have shape \(1, 2\)"):
        translate(np.zeros((1, 3, 3, 1), np.float32), [1, 2, 3])


# -- parse, config, validation -------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("shift,rotate,flip", Augment(shift=0.1, rotation=10.0, flip=True)),
    ("shift=0.1,rotate=10,flip", Augment(shift=0.1, rotation=10.0, flip=True)),
    ("shift", Augment(shift=DEFAULT_SHIFT)),
    ("rotate", Augment(rotation=DEFAULT_ROTATION)),
    ("flip", Augment(flip=True)),
    (" Flip , SHIFT = 0.25 ", Augment(shift=0.25, flip=True)),
    ("rotate=45", Augment(rotation=45.0)),
    ("shift=0,flip", Augment(flip=True)),
    ("flip=false", Augment()),
    ("flip=true,rotate=2.5", Augment(rotation=2.5, flip=True)),
    ("none", Augment()),
    ("None", Augment()),
    ("", Augment()),
    ("  ", Augment()),
])
def test_parse_forms_and_defaults(text: str, expected: Augment) -> None:
    assert Augment.parse(text) == expected
    assert (DEFAULT_SHIFT, DEFAULT_ROTATION) == (0.1, 10.0)


@pytest.mark.parametrize("text, message", [
    ("blur", r"unknown transform 'blur' in 'blur'; known: shift, rotate, flip \(or none\)"),
    ("shift,zoom=2", r"unknown transform 'zoom'.*known: shift, rotate, flip"),
    ("shift,shift=0.2", "shift given twice"),
    ("shift,,flip", "empty transform in 'shift,,flip'"),
    ("flip,", "empty transform"),
    ("none,flip", "'none' cannot be combined"),
    ("shift=abc", "shift needs a number, got shift='abc'"),
    ("rotate=", "rotate needs a number"),
    ("flip=2", "flip takes no value"),
    ("shift=0.5", r"shift must be a fraction .* in \[0, 0.5\), got 0.5"),
    ("rotate=46", r"rotation must be a number of degrees in \[0, 45\], got 46.0"),
    ("shift=nan", "shift must be .* got nan"),
])
def test_parse_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Augment.parse(text)


def test_parse_needs_a_string() -> None:
    with pytest.raises(InvalidArgumentError, match="augment must be a string, got int"):
        Augment.parse(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("aug", [Augment(), Augment(shift=0.1), Augment(rotation=12.5),
                                 Augment(flip=True), Augment(0.123456789, 44.9, True)])
def test_config_and_text_round_trip(aug: Augment) -> None:
    config = aug.get_config()
    assert json.loads(json.dumps(config)) == config
    assert set(config) == {"shift", "rotation", "flip"}
    assert Augment.from_config(json.loads(json.dumps(config))) == aug
    assert Augment.parse(str(aug)) == aug


def test_from_config_errors_and_defaults() -> None:
    assert Augment.from_config({"flip": True}) == Augment(flip=True)
    with pytest.raises(InvalidArgumentError, match=r"unknown keys \['zoom'\]"):
        Augment.from_config({"zoom": 2})
    with pytest.raises(InvalidArgumentError, match="must be a dict, got list"):
        Augment.from_config([0.1])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="rotation .* got 90"):
        Augment.from_config({"rotation": 90})


@pytest.mark.parametrize("kwargs, message", [
    ({"shift": -0.1}, r"shift must be a fraction of the image size in \[0, 0.5\), got -0.1"),
    ({"shift": 0.5}, r"shift .* got 0.5"),
    ({"shift": float("nan")}, "shift .* got nan"),
    ({"shift": True}, "shift .* got True"),
    ({"shift": "0.1"}, "shift .* got '0.1'"),
    ({"rotation": 45.5}, r"rotation must be a number of degrees in \[0, 45\], got 45.5"),
    ({"rotation": -1}, "rotation .* got -1"),
    ({"rotation": math.inf}, "rotation .* got inf"),
    ({"flip": 1}, "flip must be True or False, got 1"),
    ({"flip": "yes"}, "flip must be True or False, got 'yes'"),
])
def test_validation_names_the_argument_and_value(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Augment(**kwargs)


def test_values_are_normalised_and_bool_says_if_anything_is_on() -> None:
    aug = Augment(shift=np.float32(0.25), rotation=5, flip=np.bool_(True))
    assert type(aug.shift) is float and type(aug.rotation) is float and type(aug.flip) is bool
    assert aug.get_config() == {"shift": 0.25, "rotation": 5.0, "flip": True}
    assert not Augment() and not Augment.parse("none")
    assert Augment(shift=0.1) and Augment(rotation=1.0) and Augment(flip=True)
    assert str(Augment()) == "none" and str(Augment(shift=0.1, flip=True)) == "shift=0.1,flip"
    with pytest.raises(AttributeError):
        aug.shift = 0.2  # type: ignore[misc]
