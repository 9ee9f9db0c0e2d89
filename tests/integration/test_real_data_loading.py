"""Training and evaluation data in NVIDIA's layout with JPEG photos: resized once, cropped, flipped,
flow between the real frames, sequences held out by name. Generated fixtures always; a slice of the
real Cityscapes sequences in ../shared/data where present."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from renderer.training import datasets
from renderer.training.config import TrainConfig
from renderer.training.datasets import ClipDataset, DatasetError, hold_out, scan_dataset
from renderer.training.evaluation import dataset_sequences
from renderer.training.flow import FlowCache

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cityscapes-sequences"
EVAL_LABEL_IDS = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}
SHIFT = 8  # px per frame the square moves right, at the files' native 256x128


def _photo(frame: int) -> np.ndarray:
    """A textured 256x128 RGB photo with a bright square that moves SHIFT px right per frame."""
    rng = np.random.default_rng(7)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (128, 256, 3), dtype=np.uint8), (0, 0), 2.0)
    photo = (texture // 2 + 40).astype(np.uint8)
    x0 = 60 + SHIFT * frame
    square = cv2.GaussianBlur(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8), (0, 0), 1.5)
    photo[40:88, x0:x0 + 48] = np.clip(square.astype(np.int32) + 60, 0, 255).astype(np.uint8)
    return photo


@pytest.fixture(scope="module")
def jpeg_dataset(tmp_path_factory) -> Path:
    """NVIDIA's layout: 2 sequences x 5 frames; JPEG photos, labelIds and uint8 instance PNGs."""
    root = tmp_path_factory.mktemp("jpeg_layout")
    for seq in ("seqA", "seqB"):
        for kind in ("train_A", "train_B", "train_inst"):
            (root / kind / seq).mkdir(parents=True)
        for frame in range(5):
            name = f"city_000000_{frame:06d}_leftImg8bit"
            labels = np.full((128, 256), 7, np.uint8)
            labels[:30] = 23
            x0 = 60 + SHIFT * frame
            labels[40:88, x0:x0 + 48] = 26
            instances = np.where(labels == 26, 1, 255).astype(np.uint8)
            cv2.imwrite(str(root / "train_A" / seq / f"{name}.png"), labels)
            cv2.imwrite(str(root / "train_inst" / seq / f"{name}.png"), instances)
            cv2.imwrite(str(root / "train_B" / seq / f"{name}.jpg"), cv2.cvtColor(_photo(frame), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
    return root


def test_clips_are_area_resized_nearest_labelled_and_decoded_once(jpeg_dataset, monkeypatch) -> None:
    reads = []
    real_read_rgb = datasets.read_rgb
    monkeypatch.setattr(datasets, "read_rgb", lambda path: reads.append(path) or real_read_rgb(path))
    sequences = scan_dataset(jpeg_dataset)
    dataset = ClipDataset(sequences, 3, (96, 48), load_width=128, flip=False, flow_cache=FlowCache(None, "medium"))
    item = dataset[0]
    assert item["rgb"].shape == (3, 3, 48, 96) and item["label_ids"].shape == (3, 48, 96)
    assert set(np.unique(item["label_ids"].numpy())) <= {7, 23, 26}
    assert not item["has_flow"][0] and item["has_flow"][1:].all()

    # Every clip of the same frames reuses the decoded, resized frames: each file is read once.
    for index in range(1, 40):
        dataset[index]
    assert len(reads) == len(set(reads)) <= 10

    # The photo is the area-resized JPEG: find the crop window in the resized frame and compare.
    seq = next(s for s in sequences if dataset._frames.get((s.name, 0)) is not None)
    resized = cv2.resize(real_read_rgb(seq.rgb_paths[0]), (128, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(dataset._frames[(seq.name, 0)][1], resized)


def test_flow_follows_the_real_motion_at_the_load_size(jpeg_dataset) -> None:
    dataset = ClipDataset(scan_dataset(jpeg_dataset), 2, (128, 64), load_width=128, flip=False,
                          flow_cache=FlowCache(None, "medium"))
    item = dataset[0]
    flow = item["flow"][1].numpy()  # backward flow t -> t-1 at 128x64: the square came from SHIFT/2 px left
    square = item["label_ids"][1].numpy() == 26
    inner = cv2.erode(square.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.median(flow[0][inner]) == pytest.approx(-SHIFT / 2, abs=1.0)
    assert abs(np.median(flow[1][inner])) < 0.5


def test_flips_mirror_photo_labels_and_flow(jpeg_dataset) -> None:
    sequences = scan_dataset(jpeg_dataset)
    plain = ClipDataset(sequences, 2, (128, 64), load_width=128, flip=False)
    flipped = ClipDataset(sequences, 2, (128, 64), load_width=128, flip=True)
    index = next(i for i in range(50) if _is_flipped(plain[i], flipped[i]))
    a, b = plain[index], flipped[index]
    assert np.array_equal(a["label_ids"].numpy()[:, :, ::-1], b["label_ids"].numpy())
    assert np.allclose(-a["flow"].numpy()[:, 0, :, ::-1], b["flow"].numpy()[:, 0], atol=1e-5)


def test_colour_jitter_recolours_each_class_alike_on_every_frame(jpeg_dataset) -> None:
    sequences = scan_dataset(jpeg_dataset)
    plain = ClipDataset(sequences, 3, (128, 64), load_width=128, flip=False)[5]
    jittered = ClipDataset(sequences, 3, (128, 64), load_width=128, flip=False, colour_jitter=0.3)[5]
    assert torch.equal(plain["label_ids"], jittered["label_ids"]) and torch.equal(plain["flow"], jittered["flow"])
    gains = {}
    for label in (7, 23, 26):
        where = (plain["label_ids"] == label).unsqueeze(1).expand_as(plain["rgb"])  # (T, 3, H, W)
        unclamped = where & (jittered["rgb"].abs() < 0.999) & (plain["rgb"] > -0.9)
        ratio = (jittered["rgb"] + 1) / (plain["rgb"] + 1)
        per_channel = [ratio[:, c][unclamped[:, c]] for c in range(3)]
        assert all(values.numel() > 100 for values in per_channel)
        # One gain per class and channel, the same on every frame of the clip.
        assert all(float(values.max() - values.min()) < 1e-4 for values in per_channel)
        gains[label] = [float(values[0]) for values in per_channel]
        assert all(0.7 * 0.85 - 1e-5 <= g <= 1.3 * 1.15 + 1e-5 for g in gains[label])
    assert len({tuple(round(g, 3) for g in v) for v in gains.values()}) == 3, gains


def _is_flipped(a, b) -> bool:
    return not np.array_equal(a["label_ids"].numpy(), b["label_ids"].numpy())


def test_held_out_sequences_are_kept_out_by_name(jpeg_dataset, tmp_path) -> None:
    sequences = scan_dataset(jpeg_dataset)
    assert [s.name for s in hold_out(sequences, ["seqB"])] == ["seqA"]
    with pytest.raises(DatasetError, match=r"\['seqX'\].*seqA"):
        hold_out(sequences, ["seqX"])
    with pytest.raises(DatasetError, match="leaves no sequence"):
        hold_out(sequences, ["seqA", "seqB"])

    from renderer.training.trainer import Trainer

    import json

    from renderer.model.config import GeneratorConfig

    model = tmp_path / "tiny.json"
    model.write_text(json.dumps({"generator": GeneratorConfig(ngf=4, n_downsampling=1, n_blocks=1, n_scales=1,
                                                              single_g=None).to_dict()}))
    config = TrainConfig(datasets=[str(jpeg_dataset)], val_sequences=["seqB"], crop_width=64, crop_height=32,
                         load_width=128, model=str(model), steps=2, out_dir=str(tmp_path / "run"), device="cpu",
                         use_vgg=False, d_channels=4, d_layers=1, d_scales=1)
    trainer = Trainer(config)
    assert [s.name for s in trainer.dataset.sequences] == ["seqA"]
    trainer.close()


def test_evaluation_frames_of_named_sequences(jpeg_dataset) -> None:
    (sequence,) = dataset_sequences(jpeg_dataset, ["seqB"], (128, 64))
    assert len(sequence) == 5
    first, second = sequence[0], sequence[1]
    assert first.rgb.shape == (64, 128, 3) and first.label_ids.shape == (64, 128)
    assert not first.flow_px.any()
    inner = cv2.erode((second.label_ids == 26).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert np.median(second.flow_px[..., 0][inner]) == pytest.approx(-SHIFT / 2, abs=1.0)
    with pytest.raises(DatasetError, match="seqZ"):
        dataset_sequences(jpeg_dataset, ["seqZ"], (128, 64))


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"needs the real Cityscapes sequences in {SHARED}")
def test_a_clip_of_the_real_cityscapes_sequences() -> None:
    sequences = hold_out(scan_dataset(SHARED), ["seq0004"])
    assert [s.name for s in sequences] == ["seq0000", "seq0001", "seq0002", "seq0003"]
    assert all(len(s) == 30 and s.instance_paths is not None for s in sequences)
    dataset = ClipDataset(sequences[:1], 2, (512, 256), load_width=576, flow_cache=FlowCache(None, "ultrafast"))
    item = dataset[0]
    assert item["rgb"].shape == (2, 3, 256, 512)
    assert set(np.unique(item["label_ids"].numpy())) <= EVAL_LABEL_IDS
    assert item["edges"].sum() > 0 and item["has_flow"][1]
    rgb = (item["rgb"].numpy() + 1) * 127.5
    assert 20 < rgb.mean() < 200 and rgb.std() > 20  # a photo, not a blank or a wrong decode


def test_photo_class_colours_per_sequence_and_their_spread(tmp_path) -> None:
    from carla_neural.compare.style_sweep import class_spread
    from renderer.training.evaluation import photo_class_colours

    skies = {"grey": (150, 150, 150), "bright": (200, 200, 200)}
    for seq, sky in skies.items():
        for kind in ("train_A", "train_B"):
            (tmp_path / kind / seq).mkdir(parents=True)
        for frame in range(2):
            labels = np.full((64, 128), 7, np.uint8)
            labels[:32] = 23
            photo = np.zeros((64, 128, 3), np.uint8)
            photo[32:] = (90, 60, 60)
            photo[:32] = sky
            if seq == "grey":  # a 2x2 bicycle speck, 0.05 % of the pixels at 64x32: too few to stand for the sequence
                labels[60:62, 0:2], photo[60:62, 0:2] = 33, (255, 0, 0)
            cv2.imwrite(str(tmp_path / "train_A" / seq / f"f{frame}.png"), labels)
            cv2.imwrite(str(tmp_path / "train_B" / seq / f"f{frame}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    colours = photo_class_colours(tmp_path, (64, 32))
    assert set(colours) == {"grey", "bright"}
    assert set(colours["grey"]) == {7, 23}  # the bicycle speck is left out
    assert colours["bright"][23] == pytest.approx((200, 200, 200), abs=1)
    spread = {row["name"]: row["max_rgb_distance"] for row in class_spread(colours, {7: "road", 23: "sky"})}
    assert spread["sky"] == pytest.approx(50 * 3 ** 0.5, abs=2) and spread["road"] < 2
