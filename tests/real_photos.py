"""A fresh 3-class detection set made of real photographs (issue 21's end-to-end check),
importable by tests.

The photos are the ones scikit-image ships for offline use (`skimage.data`: the
astronaut and the cameraman are `person`, Chelsea is a `cat`, the espresso is a `cup`;
the rocket, the Hubble deep field, grass, gravel and brick are backgrounds), with boxes
written by hand below. Each image is either a crop of one source photo around its
object, or a background crop with one or two objects pasted at random sizes and places.
The files are what a user's folder holds: mostly `.jpg`, some `.png` and `.JPG`, grey
JPEGs, an RGBA PNG, phone photos stored sideways with an EXIF orientation tag (6 or 8;
the annotation is in the upright frame, as annotation tools show it) and a 16-bit grey
PNG. Written in the VOC layout that README's "Train on your own data" describes, and as
COCO JSON with category ids out of order (listed 11, 3, 7):

    root/VOC2007/classes.txt                        cat, person, cup
    root/VOC2007/JPEGImages/, Annotations/          one image and one XML per id
    root/VOC2007/ImageSets/Main/{train,test}.txt
    root/VOC2007/annotations/instances_{train,test}.json
                                                    (file names relative to JPEGImages/)

    PYTHONPATH=tests python -c "from real_photos import build; print(build('real'))"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CLASSES = ("cat", "person", "cup")
COCO_IDS = {
    "cup": 11,
    "cat": 3,
    "person": 7,
}  # listed in this order in the JSON: 11, 3, 7
# (photo, class, hand-written box x1, y1, x2, y2 in the photo's pixels)
SOURCES = [
    ("chelsea", "cat", (30, 0, 450, 299)),
    ("astronaut", "person", (25, 15, 365, 511)),
    ("camera", "person", (10, 60, 330, 511)),
    ("coffee", "cup", (170, 12, 400, 250)),
]
BACKGROUNDS = (
    "rocket",
    "hubble_deep_field",
    "grass",
    "gravel",
    "brick",
    "immunohistochemistry",
)


def _photo(name) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def _crop_around(rng, photo, box, w, h):
    """A crop of `photo` that holds `box` whole, resized to `w x h`; the box in the new
    pixels."""
    x1, y1, x2, y2 = box
    cx1, cy1 = int(rng.integers(0, x1 + 1)), int(rng.integers(0, y1 + 1))
    cx2, cy2 = (
        int(rng.integers(x2 + 1, photo.width + 1)),
        int(rng.integers(y2 + 1, photo.height + 1)),
    )
    sx, sy = w / (cx2 - cx1), h / (cy2 - cy1)
    image = photo.crop((cx1, cy1, cx2, cy2)).resize((w, h), Image.BILINEAR)
    new = [
        (x1 - cx1) * sx,
        (y1 - cy1) * sy,
        (x2 + 1 - cx1) * sx - 1,
        (y2 + 1 - cy1) * sy - 1,
    ]
    return image, [min(max(v, 0), lim - 1) for v, lim in zip(new, (w, h, w, h))]


def _collage(rng, photos, backgrounds, w, h):
    """A background crop with one or two objects pasted (overlap below IoU 0.3); boxes
    in pixels."""
    bg = backgrounds[int(rng.integers(len(backgrounds)))]
    x, y = int(rng.integers(0, bg.width - w)), int(rng.integers(0, bg.height - h))
    image, boxes, labels = bg.crop((x, y, x + w, y + h)), [], []
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(len(SOURCES)))
        name, cls, (x1, y1, x2, y2) = SOURCES[k]
        obj = photos[name].crop((x1, y1, x2 + 1, y2 + 1))
        scale = rng.uniform(0.35, 0.7) * min(w, h) / max(obj.size)
        ow, oh = max(16, int(obj.width * scale)), max(16, int(obj.height * scale))
        ox, oy = int(rng.integers(0, w - ow + 1)), int(rng.integers(0, h - oh + 1))
        box = [ox, oy, ox + ow - 1, oy + oh - 1]
        if boxes and _iou(box, boxes) > 0.3:
            continue
        obj = obj.resize((ow, oh), Image.BILINEAR)
        image.paste(
            obj.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if rng.random() < 0.5
            else obj,
            (ox, oy),
        )
        boxes.append(box), labels.append(CLASSES.index(cls))
    return image, boxes, labels


def _iou(box, boxes):
    from torchvision.ops import box_iou

    return float(
        box_iou(
            torch.tensor([box], dtype=torch.float32),
            torch.tensor(boxes, dtype=torch.float32),
        ).max()
    )


def _save(image, path_stem, k):
    """Save one image in the style of item `k` of a user's folder; returns the file
    name. Styles: phone photo (pixels stored turned, EXIF orientation 6 or 8), 16-bit
    grey PNG, RGBA PNG, grey JPEG, .png, .JPG, .jpg."""
    if k % 6 == 1:  # a phone photo: stored sideways + EXIF
        orientation = 6 if k % 12 == 1 else 8
        stored = image.transpose(
            Image.Transpose.ROTATE_90
            if orientation == 6
            else Image.Transpose.ROTATE_270
        )
        exif = stored.getexif()
        exif[0x0112] = orientation
        stored.save(path_stem.with_suffix(".jpg"), quality=90, exif=exif)
        return path_stem.name + ".jpg"
    if k == 4:  # a 16-bit grey PNG (mode I;16)
        grey = np.asarray(image.convert("L"), dtype=np.float64) / 255
        Image.fromarray((grey * 65535).round().astype(np.uint16)).save(
            path_stem.with_suffix(".png")
        )
        return path_stem.name + ".png"
    if k == 9:  # RGBA, fully opaque
        image.convert("RGBA").save(path_stem.with_suffix(".png"))
        return path_stem.name + ".png"
    ext = {3: ".png", 5: ".JPG", 8: ".png"}.get(k % 10, ".jpg")
    (image.convert("L") if k % 7 == 2 else image).save(
        path_stem.with_suffix(ext), **({"quality": 90} if ext != ".png" else {})
    )
    return path_stem.name + ext


def _annotation(img_id, filename, image, boxes, labels):
    return dict(
        id=img_id,
        filename=filename,
        width=image.width,
        height=image.height,
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.int64),
        difficult=torch.zeros(len(labels), dtype=torch.bool),
    )


def _write_coco(path, annos):
    "COCO instances JSON with the category ids 11, 3, 7 listed out of order."
    images, annotations = [], []
    for i, a in enumerate(annos, 1):
        images.append(
            dict(id=i, file_name=a["filename"], width=a["width"], height=a["height"])
        )
        for (x1, y1, x2, y2), label in zip(a["boxes"].tolist(), a["labels"].tolist()):
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=i,
                    category_id=COCO_IDS[CLASSES[label]],
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=(x2 - x1) * (y2 - y1),
                    iscrowd=0,
                )
            )
    categories = [dict(id=i, name=name) for name, i in COCO_IDS.items()]
    path.write_text(
        json.dumps(dict(images=images, annotations=annotations, categories=categories))
    )


def build(root, n_train=90, n_test=30, seed=0) -> Path:
    """Write the set under `root` (`root/VOC2007/...`, see the module docstring) and
    return `root`.

    Deterministic for a seed. Images are 220-420 px a side; a third are crops of a
    source photo, the rest collages. Item k of each split is saved in the style `_save`
    gives it (so both splits hold every style)."""
    from ssdbook.data import write_classes
    from ssdbook.voc import write_voc_xml

    root, rng = Path(root), np.random.default_rng(seed)
    base = root / "VOC2007"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main", "annotations"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    write_classes(base / "classes.txt", CLASSES)
    photos = {name: _photo(name) for name, _, _ in SOURCES}
    backgrounds = [_photo(name) for name in BACKGROUNDS]
    for split, n in (("train", n_train), ("test", n_test)):
        annos = []
        for k in range(n):
            w, h = int(rng.integers(220, 421)), int(rng.integers(220, 421))
            if k % 3 == 0:
                name, cls, box = SOURCES[(k // 3) % len(SOURCES)]
                image, b = _crop_around(rng, photos[name], box, w, h)
                boxes, labels = [b], [CLASSES.index(cls)]
            else:
                image, boxes, labels = _collage(rng, photos, backgrounds, w, h)
            img_id = f"{split}_{k:03d}"
            filename = _save(image, base / "JPEGImages" / img_id, k)
            anno = _annotation(img_id, filename, image, boxes, labels)
            write_voc_xml(
                base / "Annotations" / f"{img_id}.xml", anno, CLASSES, folder="VOC2007"
            )
            annos.append(anno)
        (base / "ImageSets/Main" / f"{split}.txt").write_text(
            "".join(f"{a['id']}\n" for a in annos)
        )
        _write_coco(base / "annotations" / f"instances_{split}.json", annos)
    return root


def new_photos(folder, n=4, seed=1) -> Path:
    """A folder of unannotated photos for `ssdbook detect` (one a sideways phone photo);
    returns the folder."""
    folder, rng = Path(folder), np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    photos = {name: _photo(name) for name, _, _ in SOURCES}
    for k in range(n):
        name, _, box = SOURCES[k % len(SOURCES)]
        image, _ = _crop_around(rng, photos[name], box, 320, 280)
        _save(image, folder / f"new_{k}", 1 if k == 0 else 0)
    return folder


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else "real"))
