"""Collect small natural photographs from images that PyPI packages ship (no downloads).

Each output is a crop (or the whole) of one source image, resized so its short side is 256 px, saved as
JPEG quality 90 under models/images/. The source table below records package, original file and licence;
it is written to models/build/work/images_info.json for write_manifest.py.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS_DIR, WORK_DIR, version  # noqa: E402

OUT = MODELS_DIR / "images"
SHORT = 256
QUALITY = 90


def _pkg_dir(mod: str) -> Path:
    return Path(importlib.util.find_spec(mod).origin).parent


SOURCES = {
    # key: (package, module, relative path, licence, attribution)
    "astronaut": ("scikit-image", "skimage", "data/astronaut.png", "Public domain",
                  "Eileen Collins, NASA Great Images database (skimage.data.astronaut: no known copyright restrictions, "
                  "released into the public domain)"),
    "chelsea": ("scikit-image", "skimage", "data/chelsea.png", "CC0-1.0",
                "Chelsea the cat, photo by Stefan van der Walt (skimage.data.chelsea: CC0)"),
    "coffee": ("scikit-image", "skimage", "data/coffee.png", "CC0-1.0",
               "Coffee cup, courtesy of Pikolo Espresso Bar, photo by Rachel Michetti (skimage.data.coffee: CC0)"),
    "rocket": ("scikit-image", "skimage", "data/rocket.jpg", "Public domain",
               "Launch of DSCOVR on Falcon 9, SpaceX, released into the public domain (skimage.data.rocket)"),
    "hubble": ("scikit-image", "skimage", "data/hubble_deep_field.jpg", "Public domain",
               "Hubble eXtreme Deep Field, NASA (skimage.data.hubble_deep_field: may be freely used in the public domain)"),
    "retina": ("scikit-image", "skimage", "data/retina.jpg", "CC0-1.0",
               "Fundus photograph of normal left eye, Mikael Haggstrom, Wikimedia Commons (skimage.data.retina: CC0 1.0)"),
    "ihc": ("scikit-image", "skimage", "data/ihc.png", "No known copyright restrictions",
            "Immunohistochemistry (colonic glands), Center for Microscopy And Molecular Imaging "
            "(skimage.data.immunohistochemistry: no known copyright restrictions)"),
    "camera": ("scikit-image", "skimage", "data/camera.png", "CC0-1.0",
               "Camera man, photo by Lav Varshney (skimage.data.camera: CC0); grayscale, stored as RGB"),
    "coins": ("scikit-image", "skimage", "data/coins.png", "No known copyright restrictions",
              "Greek coins from Pompeii, Brooklyn Museum Collection (skimage.data.coins: no known copyright "
              "restrictions); grayscale, stored as RGB"),
    "china": ("scikit-learn", "sklearn", "datasets/images/china.jpg", "CC-BY-2.0",
              "Summer Palace, Beijing; photo by danielbuechele on Flickr (some rights reserved), CC BY 2.0, "
              "retrieved by Robert Layton (sklearn.datasets.load_sample_image('china.jpg'))"),
    "flower": ("scikit-learn", "sklearn", "datasets/images/flower.jpg", "CC-BY-2.0",
               "Dahlia; photo by vultilion on Flickr (some rights reserved), CC BY 2.0, retrieved by Robert Layton "
               "(sklearn.datasets.load_sample_image('flower.jpg'))"),
    "grace_hopper": ("matplotlib", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "Public domain",
                     "Commodore Grace M. Hopper, USN, official U.S. Navy photograph (work of the U.S. federal "
                     "government, public domain); shipped as matplotlib sample data"),
}

# (output name, source key, crop box (left, top, right, bottom) in source pixels or None for the whole image)
IMAGES = [
    ("astronaut.jpg", "astronaut", None),
    ("astronaut-face.jpg", "astronaut", (130, 0, 340, 210)),
    ("astronaut-shuttle-model.jpg", "astronaut", (330, 0, 512, 300)),
    ("astronaut-helmet.jpg", "astronaut", (272, 320, 512, 512)),
    ("chelsea.jpg", "chelsea", None),
    ("chelsea-face.jpg", "chelsea", (50, 0, 350, 300)),
    ("coffee.jpg", "coffee", None),
    ("coffee-cup.jpg", "coffee", (120, 0, 450, 400)),
    ("coffee-spoon.jpg", "coffee", (300, 180, 600, 400)),
    ("rocket.jpg", "rocket", None),
    ("rocket-launchpad.jpg", "rocket", (200, 60, 460, 427)),
    ("rocket-tower.jpg", "rocket", (0, 0, 240, 427)),
    ("china.jpg", "china", None),
    ("china-pagoda.jpg", "china", (40, 0, 360, 427)),
    ("china-lake.jpg", "china", (340, 100, 640, 330)),
    ("china-trees.jpg", "china", (400, 200, 640, 427)),
    ("flower.jpg", "flower", None),
    ("flower-dahlia.jpg", "flower", (140, 60, 420, 340)),
    ("grace_hopper.jpg", "grace_hopper", None),
    ("grace_hopper-face.jpg", "grace_hopper", (150, 30, 400, 330)),
    ("hubble.jpg", "hubble", None),
    ("hubble-a.jpg", "hubble", (0, 0, 400, 400)),
    ("hubble-b.jpg", "hubble", (600, 472, 1000, 872)),
    ("retina.jpg", "retina", None),
    ("ihc.jpg", "ihc", None),
    ("camera.jpg", "camera", None),
    ("coins.jpg", "coins", None),
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.jpg"):
        old.unlink()
    info = []
    for name, key, box in IMAGES:
        pkg, mod, rel, licence, attribution = SOURCES[key]
        src = _pkg_dir(mod) / rel
        im = Image.open(src).convert("RGB")
        if box is not None:
            im = im.crop(box)
        w, h = im.size
        s = SHORT / min(w, h)
        im = im.resize((max(SHORT, round(w * s)), max(SHORT, round(h * s))), Image.BICUBIC)
        im.save(OUT / name, "JPEG", quality=QUALITY, optimize=True)
        info.append({
            "file": f"images/{name}",
            "source": f"{pkg} {version(pkg)}: {mod}/{rel}" + (f", crop box {list(box)}" if box else ", whole image"),
            "licence": licence,
            "attribution": attribution,
            "size": list(im.size),
        })
    (WORK_DIR / "images_info.json").write_text(json.dumps(info, indent=2))
    print(f"wrote {len(info)} images to {OUT}")


if __name__ == "__main__":
    main()
