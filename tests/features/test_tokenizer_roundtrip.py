import numpy as np

from drivefine_core.features import tokenizer


def test_round_trip_inside_range_is_within_half_a_bin():
    rng = np.random.default_rng(0)
    poses = np.stack(
        [rng.uniform(-99.9, 99.9, (500, 8)), rng.uniform(-99.9, 99.9, (500, 8)), rng.uniform(-1.57, 1.57, (500, 8))], axis=-1
    )
    counter = tokenizer.ClipCounter()
    tokens = tokenizer.encode(poses, counter)
    assert tokens.shape == (500, 24)
    assert counter.total == 0
    back = tokenizer.decode(tokens)
    assert np.abs(back[..., :2] - poses[..., :2]).max() <= 0.025 + 1e-9
    assert np.degrees(np.abs(back[..., 2] - poses[..., 2])).max() <= 0.05 + 1e-9
    is_h = tokenizer.position_is_heading(24)
    assert tokens[:, ~is_h].max() < tokenizer.XY_BINS
    assert tokens[:, is_h].min() >= tokenizer.HEADING_OFFSET and tokens[:, is_h].max() < tokenizer.VOCAB_SIZE


def test_out_of_range_values_are_clipped_to_the_edge_and_counted():
    poses = np.zeros((8, 3))
    poses[0, 0] = 150.0  # x above the range
    poses[1, 1] = -130.0  # y below
    poses[2, 2] = np.pi  # heading beyond 90 deg: must clip, not wrap
    counter = tokenizer.ClipCounter()
    back = tokenizer.decode(tokenizer.encode(poses, counter))
    assert (counter.xy, counter.heading) == (2, 1)
    assert back[0, 0] > 99.9 and back[1, 1] < -99.9
    assert back[2, 2] > np.radians(89.9)
