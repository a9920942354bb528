"""Exception types raised by cnnlab.

Every error a user can cause derives from :class:`CnnlabError`, so callers (and
the command line) can tell a user's mistake from a bug. Each also derives from
the closest built-in type (``ValueError``, ``OSError`` ...) so ordinary
``except ValueError`` code keeps working.
"""

from __future__ import annotations


class CnnlabError(Exception):
    """Base class of every error cnnlab raises on bad input."""


class InvalidArgumentError(CnnlabError, ValueError):
    """A layer, op, optimizer or command got an argument it cannot use."""


class ShapeError(CnnlabError, ValueError):
    """Array shapes do not fit together (names the layer and the shapes)."""


class DataFormatError(CnnlabError, ValueError):
    """A data file (IDX, gzip, image) is malformed, truncated or inconsistent."""


class ChecksumError(DataFormatError):
    """A downloaded or bundled file does not match its expected SHA-256."""


class DownloadError(CnnlabError, OSError):
    """No mirror delivered a file with the expected SHA-256."""


class ModelFileError(CnnlabError, ValueError):
    """A model or checkpoint file is unreadable, truncated or does not fit the model."""


class NonFiniteError(CnnlabError, FloatingPointError):
    """A NaN or infinity appeared in the inputs, the loss or a gradient."""


class ImageDecodeError(DataFormatError):
    """An image is missing, unreadable, or bytes no decoder accepts (names the source)."""


class NoDigitError(DataFormatError):
    """A picture holds no digit: it is blank, or its ink vanished when it was scaled."""


class ImageTooLargeError(ImageDecodeError):
    """An image's header claims more pixels than cnnlab decodes (a decompression bomb?).

    Raised before any pixel is decoded; names the file, its size and the limit
    (:data:`cnnlab.imageio.MAX_IMAGE_PIXELS`).
    """


class SpecError(InvalidArgumentError):
    """A model specification (JSON architecture) is malformed or cannot be built."""


class DeviceError(CnnlabError, RuntimeError):
    """A device (``"gpu"``) was asked for and cannot be used: CuPy is not installed,
    or no CUDA device or driver can be reached (the message says which)."""
