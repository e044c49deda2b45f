"""A user's own data for calibration and fidelity (``--data PATH``): arrays keyed by input name, or a folder of images.

- ``.npz``: one array per model input, keyed by the input's name, samples along the first axis (``[n, ...]``); an
  array named ``labels`` (or ``y``) holds integer class ids, one per sample.
- ``.npy``: the samples of a model with one input.
- a folder of images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.webp``): each image is resized on its short side and
  centre-cropped to the model's image input (``[1, 3, H, W]`` or ``[1, H, W, 3]``), then ``(x - mean) / std`` with the
  user's ``--normalise MEAN,STD`` (default ``0,255``: pixels in 0..1). Labels come from a folder per class (class ids
  in sorted folder-name order) or a ``labels.txt`` of ``file label`` lines.

Loading happens where the data is used: in the isolated child (``models.isolated``), never in the CLI or the server.
Errors are one UsageError sentence naming the file and what to change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
MAX_SAMPLES = 256  # calibration and fidelity need tens of samples, never a whole dataset in memory
DEFAULT_NORMALISE = (0.0, 255.0)


@dataclass(frozen=True)
class DataSet:
    feeds: list  # one list of arrays (model input order) per sample, each with batch dimension 1
    labels: np.ndarray | None
    description: str  # "42 images in photos/ (3 classes from folders)"


def ident(path: str | Path, normalise: tuple[float, float] = DEFAULT_NORMALISE) -> str:
    """A cheap identity of the data for cache keys: names, sizes and modification times of its files."""
    p = Path(path)
    h = hashlib.sha256(repr(tuple(normalise)).encode())
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if p.is_dir() else f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"data:{h.hexdigest()[:32]}"


def check_path(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"--data {p}: no such file or folder.", "Give a folder of images, or a .npz/.npy file.")
    if p.is_file() and p.suffix.lower() not in (".npz", ".npy"):
        raise UsageError(f"--data {p.name} is neither a folder nor a .npz/.npy file.",
                         "Give a folder of images, or arrays saved with numpy.savez (keys: the input names).")
    return p


def load(path: str | Path, specs: list, normalise: tuple[float, float] = DEFAULT_NORMALISE) -> DataSet:
    """Samples for the model inputs ``specs`` (TensorSpec list) from ``path``; at most ``MAX_SAMPLES``."""
    p = check_path(path)
    if p.suffix.lower() in (".npz", ".npy"):
        return _arrays(p, specs)
    return _images(p, specs, normalise)


def _cast(x: np.ndarray, spec) -> np.ndarray:
    try:
        return np.asarray(x).astype(np.dtype(spec.dtype), copy=False)
    except TypeError:
        return np.asarray(x)


def _arrays(p: Path, specs: list) -> DataSet:
    names = [s.name for s in specs]
    try:
        if p.suffix.lower() == ".npy":
            if len(specs) != 1:
                raise UsageError(f"--data {p.name} holds one array, but the model has {len(specs)} inputs "
                                 f"({', '.join(names)}).", "Save them with numpy.savez, keyed by input name.")
            arrays = {names[0]: np.load(p, allow_pickle=False)}
            labels = None
        else:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            labels = arrays.pop("labels", arrays.pop("y", None))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--data {p.name} cannot be read as numpy arrays ({type(exc).__name__}).",
                         "Save it with numpy.save or numpy.savez (no pickled objects).") from None
    missing = [n for n in names if n not in arrays]
    if missing:
        raise UsageError(f"--data {p.name} has no array for input {', '.join(map(repr, missing))} (it has: "
                         f"{', '.join(arrays) or 'none'}).", "Key the arrays by the model's input names.")
    counts = {len(arrays[n]) for n in names}
    if len(counts) != 1:
        raise UsageError(f"--data {p.name}: the inputs' arrays hold different numbers of samples.",
                         "Give every input the same number of samples along the first axis.")
    n = min(counts.pop(), MAX_SAMPLES)
    feeds = [[_cast(arrays[s.name][i:i + 1], s) for s in specs] for i in range(n)]
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)[:n].astype(np.int64)
    what = f"{n} samples from {p.name}" + (" with labels" if labels is not None else "")
    return DataSet(feeds, labels, what)


def _image_input(specs: list) -> tuple[str, int, int]:
    if len(specs) != 1 or len(specs[0].shape) != 4:
        raise UsageError("--data with images needs a model with one image input ([1, 3, H, W] or [1, H, W, 3]).",
                         "Give arrays in a .npz keyed by input name instead.")
    shape = specs[0].shape
    if shape[1] == 3 and isinstance(shape[2], int) and isinstance(shape[3], int):
        return "NCHW", shape[2], shape[3]
    if shape[3] == 3 and isinstance(shape[1], int) and isinstance(shape[2], int):
        return "NHWC", shape[1], shape[2]
    raise UsageError(f"input {specs[0].name!r} is {list(shape)}: not an image of fixed size with 3 channels.",
                     "Give arrays in a .npz keyed by input name instead.")


def _images(folder: Path, specs: list, normalise: tuple[float, float]) -> DataSet:
    from PIL import Image, UnidentifiedImageError

    layout, height, width = _image_input(specs)
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())[:MAX_SAMPLES]
    if not files:
        raise UsageError(f"--data {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).",
                         "Put images in it, or give a .npz of arrays.")
    classes = sorted({f.parent.name for f in files if f.parent != folder})
    table = _labels_txt(folder / "labels.txt")
    mean, std = normalise
    feeds, labels = [], []
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("RGB")
                w, h = im.size
                scale = max(height / h, width / w)
                nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
                im = im.resize((nw, nh), Image.BILINEAR)
                left, top = (nw - width) // 2, (nh - height) // 2
                x = np.asarray(im.crop((left, top, left + width, top + height)), np.float32)
        except (OSError, UnidentifiedImageError):
            raise UsageError(f"--data: {f.name} is not an image Pillow can read.", "Remove it or convert it.") from None
        x = (x - mean) / std
        x = x.transpose(2, 0, 1)[None] if layout == "NCHW" else x[None]
        feeds.append([_cast(x, specs[0])])
        if table is not None:
            labels.append(table.get(f.name))
        elif classes and f.parent != folder:
            labels.append(classes.index(f.parent.name))
        else:
            labels.append(None)
    have = all(lab is not None for lab in labels)
    source = "labels.txt" if table is not None else f"{len(classes)} class folders" if classes else None
    what = f"{len(feeds)} images in {folder.name}/ ({layout} {height}x{width}, (x - {mean:g}) / {std:g})"
    if have and source:
        what += f", labels from {source}"
    return DataSet(feeds, np.asarray(labels, np.int64) if have else None, what)


def _labels_txt(path: Path) -> dict[str, int] | None:
    if not path.is_file():
        return None
    out = {}
    for i, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            out[parts[0]] = int(parts[1])
        except (IndexError, ValueError):
            raise UsageError(f"labels.txt line {i} is not 'FILE CLASS_ID' ({line[:60]!r}).",
                             "Write one image file name and its integer class id per line.") from None
    return out


def parse_normalise(text: str | None) -> tuple[float, float]:
    """``"127,128"`` -> (127.0, 128.0): (x - mean) / std on 0..255 pixels; None -> ``DEFAULT_NORMALISE``."""
    if not text:
        return DEFAULT_NORMALISE
    try:
        mean, std = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--normalise {text!r} is not MEAN,STD (e.g. 127,128 or 0,255).") from None
    if std == 0:
        raise UsageError("--normalise: STD must not be 0.")
    return mean, std
