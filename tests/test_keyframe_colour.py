"""Keyframe colour with the colour prior: later keyframes of a shot agree with the colour carried into them, and
with ``consensus`` that colour is the mean of the prior's views of the shot so far."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np

from hueshift_core.hints import FrameColour
from hueshift_core.video.analysis import Sizes
from hueshift_core.video.keyframe_colour import KeyframeColorizer


def _frames():
    """Two different grey pictures at the propagation resolution (uint8 L [h, w]), and the sizes."""
    rng = np.random.default_rng(1)
    a, b = (cv2.GaussianBlur(rng.integers(0, 255, (128, 224), dtype=np.uint8), (0, 0), s) for s in (2, 6))
    return a, b, Sizes((480, 854), (64, 112), (128, 224))


def _shot(model, consensus: bool) -> KeyframeColorizer:
    c = KeyframeColorizer(model, _frames()[2], consensus=consensus)
    c.start_shot(SimpleNamespace(index=0))
    return c


def test_later_keyframes_average_the_priors_views_where_the_colour_tracks(prior_model):
    a, b, sizes = _frames()
    own_b = _shot(prior_model, False).colour([b])[0]  # the prior's own view of b, as a shot's first keyframe
    carried = np.full((*sizes.prop, 2), 30.0, np.float32)  # a colour carried into b that tracks everywhere
    ones = np.ones(sizes.prop, np.float32)

    locked = _shot(prior_model, False)
    locked.colour([a])
    np.testing.assert_allclose(locked.colour([b], [carried], [ones])[0], carried, atol=1e-4)  # the first view kept

    mean = _shot(prior_model, True)
    mean.colour([a])  # the shot's first view
    second = mean.colour([b], [carried], [ones])[0]
    np.testing.assert_allclose(second, (carried + own_b) / 2, atol=1e-3)  # the mean of two views
    third = mean.colour([b], [second], [ones])[0]
    np.testing.assert_allclose(third, (2 * second + own_b) / 3, atol=1e-3)  # a third view counts a third

    lost = np.zeros(sizes.prop, np.float32)  # where nothing tracks, the prior's view (spread from the rest)
    assert np.abs(mean.colour([b], [carried], [lost])[0] - own_b).mean() < 1.0

    mean.start_shot(SimpleNamespace(index=20))  # a new shot starts over: its first keyframe is the prior's view
    np.testing.assert_allclose(mean.colour([b])[0], own_b, atol=1e-4)


def test_the_users_colour_is_kept_not_averaged(prior_model):
    a, b, sizes = _frames()
    carried = np.full((*sizes.prop, 2), 30.0, np.float32)
    ones = np.ones(sizes.prop, np.float32)
    c = _shot(prior_model, True)
    reference = FrameColour(np.full((*sizes.prop, 2), -20.0, np.float32), np.ones(sizes.prop, np.float32), True)
    c.user = {0: reference}
    c(SimpleNamespace(index=0, l_prop=a))  # a referenced shot start
    np.testing.assert_allclose(c.colour([b], [carried], [ones])[0], carried, atol=1e-4)
