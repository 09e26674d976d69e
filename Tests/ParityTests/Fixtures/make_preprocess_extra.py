"""Writes preprocess_extra.npz: scikit-image 0.26 / OpenCV outputs of the preprocessing ops on
small synthetic 8-bit images that the Figure 12 reference (48x48 faces) does not cover: sizes
that are not multiples of CLAHE's 8x8 tiles, a low-contrast image, a two-level image, a constant
image, and `equalize_hist` (which the paper's notebooks did not call).

Run from the repository root with scikit-image 0.26, opencv-python-headless and numpy:
    python Tests/ParityTests/Fixtures/make_preprocess_extra.py
Arrays: `<case>.x` (uint8 [H, W]) and `<case>.<technique>` (float64 [H, W]); `std` is left out of
the constant case (numpy divides 0 by 0 there; fergc's standardize gives 0).
"""
import cv2
import numpy as np
import skimage
from skimage import exposure, filters
from skimage.filters import rank
from skimage.morphology import disk

assert skimage.__version__.startswith("0.26"), skimage.__version__
rng = np.random.default_rng(11)
cases = {
    "random": rng.integers(0, 256, size=(26, 35), dtype=np.uint8),
    "smooth": (np.add.outer(np.arange(21) * 5, np.arange(17) * 3) % 256).astype(np.uint8),
    "lowcontrast": rng.integers(100, 111, size=(20, 26), dtype=np.uint8),
    "twolevel": np.where(rng.random((17, 19)) < 0.3, 40, 200).astype(np.uint8),
    "constant": np.full((12, 9), 77, dtype=np.uint8),
}
out = {}
for name, im in cases.items():
    out[f"{name}.x"] = im
    r = {
        "clahe": exposure.equalize_adapthist(im, clip_limit=0.99),
        "clahe_default": exposure.equalize_adapthist(im),
        "equalize": rank.equalize(im, footprint=disk(30)),
        "equalize_r5": rank.equalize(im, footprint=disk(5)),
        "equalize_hist": exposure.equalize_hist(im),
        "normalize": cv2.normalize(im, None, alpha=0, beta=1, norm_type=cv2.NORM_MINMAX, dtype=cv2.CV_32F),
        "sobel": filters.sobel(im),
        "scharr": filters.scharr(im),
        "prewitt": filters.prewitt(im),
        "roberts": filters.roberts(im),
        "yen": im > filters.threshold_yen(im),
        "isodata": im > filters.threshold_isodata(im),
        "mean": im > filters.threshold_mean(im),
    }
    if name != "constant":
        r["std"] = (im - im.mean()) / im.std()
    for k, v in r.items():
        out[f"{name}.{k}"] = np.asarray(v, dtype=np.float64)
np.savez("Tests/ParityTests/Fixtures/preprocess_extra.npz", **out)
print(len(out), "arrays")
