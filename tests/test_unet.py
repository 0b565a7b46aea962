import pytest
import torch
from conftest import TINY

from hueshift_core.errors import CheckpointError, InputError
from hueshift_core.model.unet import ColorUNet, UNetConfig, count_parameters


@pytest.mark.parametrize("hw", [(64, 64), (64, 112), (8, 8), (24, 40)])
@pytest.mark.parametrize("batch", [1, 3])
def test_shapes(hw, batch):
    net = ColorUNet(TINY).eval()
    x = torch.randn(batch, 2, *hw)
    out = net(x, torch.full((batch,), 10.0), torch.randn(batch, 1, *hw))
    assert out.shape == x.shape


def test_default_config_size_and_shape():
    net = ColorUNet()
    n = count_parameters(net)
    assert n * 2 <= 16 * 1024 * 1024, f"{n} parameters do not fit 16 MB in fp16"
    with torch.no_grad():
        out = net(torch.randn(2, 2, 64, 112), torch.tensor([0.0, 999.0]), torch.randn(2, 1, 64, 112))
    assert out.shape == (2, 2, 64, 112)


def test_extra_condition_channels():
    cfg = UNetConfig(**{**TINY.__dict__, "extra_cond_channels": 3})
    net = ColorUNet(cfg)
    out = net(torch.randn(1, 2, 16, 16), torch.tensor([3.0]), torch.randn(1, 4, 16, 16))
    assert out.shape == (1, 2, 16, 16)


def test_timestep_and_condition_change_output():
    torch.manual_seed(0)
    net = ColorUNet(TINY)
    for name, p in net.named_parameters():  # undo the zero-init of output layers
        if p.dim() == 4 and float(p.detach().abs().sum()) == 0:
            torch.nn.init.normal_(p, std=0.05)
    x, c = torch.randn(1, 2, 16, 16), torch.randn(1, 1, 16, 16)
    a = net(x, torch.tensor([1.0]), c)
    assert not torch.allclose(a, net(x, torch.tensor([900.0]), c))
    assert not torch.allclose(a, net(x, torch.tensor([1.0]), -c))


def test_bad_inputs():
    net = ColorUNet(TINY)
    with pytest.raises(InputError, match="multiples of 8"):
        net(torch.randn(1, 2, 60, 64), torch.tensor([1.0]), torch.randn(1, 1, 60, 64))
    with pytest.raises(InputError, match="cond"):
        net(torch.randn(1, 2, 64, 64), torch.tensor([1.0]), torch.randn(1, 1, 32, 32))
    with pytest.raises(InputError):
        UNetConfig(base_channels=30, groups=8)


def test_config_json_round_trip_and_unknown_fields():
    cfg = UNetConfig()
    assert UNetConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(CheckpointError, match="unknown model config"):
        UNetConfig.from_json('{"base_channels": 32, "wormholes": 3}')
    with pytest.raises(CheckpointError, match="JSON"):
        UNetConfig.from_json("{not json")


def test_channels_last_and_fused_attention_keep_the_outputs():
    """The CPU inference layout (NHWC weights, what load_model sets) and the attention's fused kernel
    give the plain NCHW network's output within float rounding, on the 16:9 working size."""
    from hueshift_core.model.checkpoint import default_model_path, load_model

    model = load_model(default_model_path(), "cpu")
    assert model.net.stem.weight.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    x, c, t = torch.randn(2, 2, 64, 112), torch.rand(2, 1, 64, 112) * 2 - 1, torch.tensor([900.0, 40.0])
    with torch.no_grad():
        nhwc = model.net(x, t, c)
        nchw = model.net.to(memory_format=torch.contiguous_format)(x, t, c)
        q = model.net.mid_attn.qkv  # the attention's math path, as the network ran before
        h = model.net.mid_attn.norm(torch.randn(1, q.in_channels, 8, 14))
        ref = model.net.mid_attn(h)
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            math = model.net.mid_attn(h)
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and nchw.is_contiguous()
    torch.testing.assert_close(nhwc, nchw, atol=1e-4, rtol=0)
    torch.testing.assert_close(ref, math, atol=1e-4, rtol=0)
    assert float(nhwc.abs().mean()) > 1e-3  # a real output, not zeros
