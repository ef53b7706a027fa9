import pytest
import torch

from dgraph.audio import pad_or_crop, pad_to_multiple, peak_normalize, trim_silence
from dgraph.errors import DgraphError


def test_peak_normalize():
    x = torch.tensor([[0.1, -0.4], [0.2, 0.0]])
    torch.testing.assert_close(peak_normalize(x, 0.8), torch.tensor([[0.2, -0.8], [0.4, 0.0]]))
    assert torch.equal(peak_normalize(torch.zeros(3)), torch.zeros(3))
    with pytest.raises(DgraphError, match=r"peak_normalize: peak must be in \(0, 1\], got 1.5"):
        peak_normalize(x, 1.5)


def test_trim_silence_keeps_the_loud_frames():
    rate = 1000  # 20 ms frames of 20 samples
    x = torch.zeros(1, 1000)
    x[0, 300:500] = torch.sin(torch.arange(200) * 0.5)
    trimmed = trim_silence(x, rate, threshold_db=-40)
    assert trimmed.shape == (1, 200)
    assert torch.equal(trimmed, x[:, 300:500])
    assert torch.equal(trim_silence(torch.zeros(1, 500), rate), torch.zeros(1, 500))


def test_pad_and_crop():
    x = torch.arange(5.0).reshape(1, 5)
    assert pad_or_crop(x, 3).tolist() == [[0, 1, 2]]
    assert pad_or_crop(x, 7).tolist() == [[0, 1, 2, 3, 4, 0, 0]]
    assert pad_to_multiple(x, 4).shape == (1, 8) and pad_to_multiple(x, 5).shape == (1, 5)
