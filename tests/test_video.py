"""Scene-video access: frame-accurate random access, streaming, the lazy array, errors."""

from __future__ import annotations

import threading
import tracemalloc

import av
import numpy as np
import pytest

import napari_densepose_gaze.video as video_module
from napari_densepose_gaze.errors import DensePoseGazeError
from napari_densepose_gaze.synthetic.video_writer import write_h264
from napari_densepose_gaze.video import VideoArray, VideoReader, count_frames

H, W = 48, 64
N_FRAMES = 100
GOP = 12
BITS = 8  # frame index as 8 black/white blocks of 8x16 px across the top


def indexed_frame(i: int) -> np.ndarray:
    """A frame that carries its index visibly: binary blocks on top, a moving gradient below."""
    frame = np.empty((H, W, 3), dtype=np.uint8)
    for bit in range(BITS):
        frame[:16, bit * 8 : (bit + 1) * 8] = 255 if (i >> bit) & 1 else 0
    yy, xx = np.mgrid[16:H, 0:W]
    frame[16:, :, 0] = (xx * 4 + i * 5) % 256
    frame[16:, :, 1] = (yy * 6 + i * 3) % 256
    frame[16:, :, 2] = (i * 11) % 256
    return frame


def read_index(frame: np.ndarray) -> int:
    bits = [frame[2:14, b * 8 + 2 : b * 8 + 6].mean() > 127 for b in range(BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "scene.mp4"
    n = write_h264(path, (indexed_frame(i) for i in range(N_FRAMES)), fps=30, audio_seconds=1.5, gop=GOP)
    assert n == N_FRAMES
    return path


@pytest.fixture(scope="module")
def sequential(video_path):
    """All frames decoded in one pass, straight through PyAV: the reference."""
    with av.open(str(video_path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return np.stack(frames)


@pytest.fixture
def reader(video_path):
    with VideoReader(video_path) as r:
        yield r


# -- the synthetic writer ------------------------------------------------------------


def test_writer_makes_sparse_keyframes_bframes_and_audio(video_path):
    with av.open(str(video_path)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.video[0].codec_context.name == "h264"
        packets = [p for p in container.demux(video=0) if p.size]
    pts = [p.pts for p in packets]
    assert pts != sorted(pts), "B-frames make decode order differ from presentation order"
    key_pts = sorted(p.pts for p in packets if p.is_keyframe)
    step = packets[1].duration or (sorted(pts)[1] - sorted(pts)[0])
    assert [p // step for p in key_pts] == list(range(0, N_FRAMES, GOP))


def test_writer_rejects_frames_of_changing_size(tmp_path):
    frames = [np.zeros((H, W, 3), np.uint8), np.zeros((H + 2, W, 3), np.uint8)]
    with pytest.raises(ValueError, match="frame 1"):
        write_h264(tmp_path / "bad.mp4", frames)


def test_frames_carry_their_index_in_presentation_order(sequential):
    assert [read_index(f) for f in sequential] == list(range(N_FRAMES))


# -- VideoReader ------------------------------------------------------------------------


def test_reader_metadata(reader):
    assert len(reader) == N_FRAMES
    assert reader.shape == (N_FRAMES, H, W, 3)
    assert reader.fps == pytest.approx(30)
    assert list(reader.keyframes) == list(range(0, N_FRAMES, GOP))
    assert np.all(np.diff(reader.pts) > 0)


def test_count_frames_counts_video_packets_only(video_path):
    assert count_frames(video_path) == N_FRAMES


def test_random_order_access_matches_sequential_decode(reader, sequential):
    order = np.random.default_rng(0).permutation(N_FRAMES)
    for i in order:
        frame = reader.frame(int(i))
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
        np.testing.assert_array_equal(frame, sequential[i], err_msg=f"frame {i}")


def test_skipping_nonreference_frames_changes_no_pixel(video_path, sequential, monkeypatch):
    monkeypatch.setattr(video_module._Decoder, "skip_nonref", False)
    with VideoReader(video_path) as plain:
        for i in (5, 61, 99, 13, 37):
            np.testing.assert_array_equal(plain.frame(i), sequential[i])


@pytest.mark.parametrize("thread_type", ["NONE", "FRAME", "AUTO"])
def test_each_decoder_threading_gives_the_same_frames(video_path, sequential, thread_type):
    with VideoReader(video_path, thread_type=thread_type) as r:
        for i in (70, 3, 47, 48, 11, 99):
            np.testing.assert_array_equal(r.frame(i), sequential[i])
        for i, frame in r.iter_frames(indices=[0, 1, 30, 31, 32, 95], thread_type=thread_type):
            np.testing.assert_array_equal(frame, sequential[i])


def test_sequential_reads_after_a_seek_decode_forward(reader, monkeypatch):
    seeks = []
    original = video_module._Decoder._seek
    monkeypatch.setattr(video_module._Decoder, "_seek", lambda self, k: (seeks.append(k), original(self, k)))
    for i in range(30, 70):  # crosses three keyframes
        assert read_index(reader.frame(i)) == i
    assert seeks == [30 // GOP]
    reader.frame(90)  # a jump past the next keyframe seeks
    reader.frame(20)  # and so does going back
    assert seeks == [30 // GOP, 90 // GOP, 20 // GOP]


def test_negative_and_out_of_range_indices(reader, sequential):
    np.testing.assert_array_equal(reader.frame(-1), sequential[-1])
    with pytest.raises(IndexError):
        reader.frame(N_FRAMES)
    with pytest.raises(IndexError):
        reader.frame(-N_FRAMES - 1)


def test_cached_frames_are_read_only_and_cache_is_bounded(video_path):
    with VideoReader(video_path, cache_bytes=3 * H * W * 3) as r:
        frame = r.frame(4)
        with pytest.raises(ValueError):
            frame[0, 0, 0] = 1
        for i in range(N_FRAMES):
            r.frame(i)
        assert len(r._cache) == 3
        assert r.frame(N_FRAMES - 1) is r.frame(N_FRAMES - 1)  # served from the cache


def test_memory_stays_flat_while_reading_a_whole_video(video_path):
    with VideoReader(video_path, cache_bytes=4 * H * W * 3) as r:
        r.frame(0)
        tracemalloc.start()
        try:
            for i in range(N_FRAMES):
                r.frame(i)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 20 * H * W * 3  # a few frames, not the whole video (100 frames)


def test_iter_frames_streams_what_was_asked_in_order(reader, sequential):
    got = list(reader.iter_frames(indices=[97, 3, 50, 3, -1]))
    assert [i for i, _ in got] == [3, 50, 97, 99]
    for i, frame in got:
        np.testing.assert_array_equal(frame, sequential[i])
        assert frame.flags.writeable
    assert [i for i, _ in reader.iter_frames(start=10, stop=40, step=7)] == [10, 17, 24, 31, 38]
    assert [read_index(f) for _, f in reader.iter_frames()] == list(range(N_FRAMES))
    with pytest.raises(IndexError):
        list(reader.iter_frames(indices=[N_FRAMES]))


def test_iter_frames_does_not_disturb_random_access(reader, sequential):
    stream = reader.iter_frames(start=0, stop=N_FRAMES)
    for j in (80, 81, 5, 60):
        i, frame = next(stream)
        np.testing.assert_array_equal(frame, sequential[i])
        np.testing.assert_array_equal(reader.frame(j), sequential[j])


def test_concurrent_readers_in_threads_get_the_right_frames(reader, sequential):
    errors = []

    def worker(seed):
        for i in np.random.default_rng(seed).integers(0, N_FRAMES, size=25):
            if not np.array_equal(reader.frame(int(i)), sequential[i]):
                errors.append(int(i))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_closed_reader_refuses_reads(video_path):
    r = VideoReader(video_path)
    r.close()
    with pytest.raises(ValueError, match="closed"):
        r.frame(0)


def test_neon_sized_frames_round_trip(tmp_path):
    frames = [np.full((1200, 1600, 3), 40 * i, np.uint8) for i in range(3)]
    path = tmp_path / "neon.mp4"
    write_h264(path, frames, gop=30)
    with VideoReader(path) as r:
        assert r.shape == (3, 1200, 1600, 3)
        assert abs(int(r.frame(2)[600, 800, 0]) - 80) <= 3


# -- errors a user can cause ---------------------------------------------------------------


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(DensePoseGazeError, match="nope.mp4"):
        VideoReader(path)
    with pytest.raises(DensePoseGazeError, match="nope.mp4"):
        count_frames(path)


def test_not_a_video_names_the_file(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video")
    with pytest.raises(DensePoseGazeError, match="notes.mp4"):
        VideoReader(path)


def test_truncated_video_names_the_file(tmp_path, video_path):
    path = tmp_path / "truncated.mp4"
    path.write_bytes(video_path.read_bytes()[:2000])
    with pytest.raises(DensePoseGazeError, match="truncated.mp4"):
        VideoReader(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000, layout="mono")
        for start in range(0, 4096, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(DensePoseGazeError, match="no video stream"):
        VideoReader(path)


# -- VideoArray ----------------------------------------------------------------------------


KEYS = [
    5,
    -1,
    np.int64(7),
    slice(2, 30, 3),
    slice(None, None, -9),
    slice(50, 50),
    (3, slice(None, None, 2), slice(None, None, 2)),
    (slice(1, 4), 5),
    (slice(10, 20, 5), slice(4, 40, 3), slice(None), 0),
    (Ellipsis, 0),
    (7, Ellipsis, 1),
    (Ellipsis, 2, 3, 1),
    (Ellipsis, 9, 2, 3, 1),
    (slice(3, 5), None, 0),
    [3, 1, 3],
    np.array([[0, 99], [1, 2]]),
    (2, [1, 2], [3, 4]),
    (slice(0, 3), slice(None), [0, 2]),
    (4, slice(None), [0, 2]),
    (),
]


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_lazy_array_indexing_matches_numpy(reader, sequential, key):
    arr = reader.lazy_array()
    expected = sequential[key]
    got = arr[key]
    assert isinstance(got, (np.ndarray, np.generic))  # a numpy scalar for a single pixel value
    assert np.shape(got) == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_lazy_array_looks_like_an_array(reader, sequential):
    arr = VideoArray(reader)
    assert (arr.shape, arr.dtype, arr.ndim, len(arr), arr.size) == (
        sequential.shape, np.uint8, 4, N_FRAMES, sequential.size
    )
    np.testing.assert_array_equal(np.asarray(arr), sequential)
    mask = np.zeros(N_FRAMES, bool)
    mask[[4, 8]] = True
    np.testing.assert_array_equal(arr[mask], sequential[mask])


def test_lazy_array_limited_to_first_frames(reader, sequential):
    arr = reader.lazy_array(n_frames=20)
    assert arr.shape == (20, H, W, 3)
    np.testing.assert_array_equal(arr[-1], sequential[19])
    np.testing.assert_array_equal(arr[15:], sequential[15:20])
    with pytest.raises(IndexError):
        arr[20]
    with pytest.raises(IndexError):
        arr[[1, 25]]
    with pytest.raises(ValueError):
        reader.lazy_array(n_frames=N_FRAMES + 1)


def test_lazy_array_refuses_to_materialise_too_much(reader, monkeypatch):
    monkeypatch.setattr(video_module, "MAX_MATERIALIZE_BYTES", 10 * H * W * 3)
    arr = reader.lazy_array()
    assert arr[:10].shape == (10, H, W, 3)
    assert arr[:40, ::2, ::2].shape == (40, H // 2, W // 2, 3)  # cropped frames are small enough
    with pytest.raises(DensePoseGazeError, match="iter_frames"):
        np.asarray(arr)


def test_napari_image_layer_decodes_only_the_shown_frame(reader, monkeypatch):
    layers = pytest.importorskip("napari.layers")
    touched = []
    original = VideoReader.frame
    monkeypatch.setattr(VideoReader, "frame", lambda self, i: (touched.append(i), original(self, i))[1])
    layer = layers.Image(reader.lazy_array(), rgb=True)
    assert layer.rgb and layer.data.shape == (N_FRAMES, H, W, 3)
    layer.refresh()
    assert 0 < len(set(touched)) <= 3
