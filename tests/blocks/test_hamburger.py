"""The Hamburger block: versions, breads, ham wiring, token form, export and hygiene."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import hamburger as hb
import reference as ref
from hamburger.solvers._init import draw_bases

HAMS = ("nmf", "vq", "cd")
VERSIONS = [("v1", False), ("v2", False), ("v2+", False), ("v2+", True)]


def _block(name="nmf", **kwargs):
    kwargs.setdefault("rank", 4)
    kwargs.setdefault("steps", 2)
    kwargs.setdefault("eval_steps", 3)
    return hb.Hamburger(kwargs.pop("channels", 16), ham=name, **kwargs)


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize(("version", "dual"), VERSIONS)
@pytest.mark.parametrize("groups", [1, 2])
def test_shapes_and_gradients(name, version, dual, groups):
    gate = 1.0 if version == "v2+" else None  # a zero gate (the v2+ default) blocks the branch's gradient
    block = _block(name, version=version, dual=dual, groups=groups, ham_channels=8, gate_init=gate)
    x = torch.randn(2, 16, 5, 4, requires_grad=True)
    out = block.train()(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    # every conv gets a gradient, the lower bread only through the ham's code step
    assert block.lower_bread.weight.grad is not None and block.lower_bread.weight.grad.abs().sum() > 0
    assert block.ham.training
    assert block.eval()(x).shape == x.shape
    width = 16 if dual else 8
    assert block.lower_bread.out_channels == width
    if version != "v1":
        assert block.upper_bread.in_channels == width // (groups * (2 if dual else 1))
    if dual:
        assert block.ham.spatial and not block.ham_channel.spatial


@pytest.mark.parametrize("name", HAMS)
@pytest.mark.parametrize("dual", [False, True])
def test_v2plus_gate_zero_is_relu_at_init(name, dual):
    block = _block(name, version="v2+", dual=dual)
    assert block.coef_ham.item() == 0.0 and block.coef_shortcut.item() == 1.0
    x = torch.randn(2, 16, 4, 4)
    for training in (True, False):
        assert torch.equal(block.train(training)(x), torch.relu(x))
    nonzero = _block(name, version="v2+", gate_init=0.5).eval()
    assert not torch.equal(nonzero(x), torch.relu(x))


@pytest.mark.parametrize("name", HAMS)
def test_v1_block_matches_formula(name):
    """Eval v1 block, float64: out = relu(x + BN(W_u M(act(W_l x)))) with the reference ham."""
    block = _block(name, dtype=torch.float64).eval()
    x = torch.randn(2, 16, 3, 4, dtype=torch.float64)
    with torch.no_grad():
        block.upper_norm.running_mean.normal_()
        block.upper_norm.running_var.uniform_(0.5, 2.0)
        z = block.lower_bread(x)
        if name == "nmf":
            z = torch.relu(z)
        bases = draw_bases((1, 16, 4), distribution=block.ham.distribution, dtype=torch.float64, fixed=True)
        h = ref.reconstruct(name, z, bases.repeat(2, 1, 1), steps=3)
        expected = torch.relu(x + block.upper_norm(block.upper_bread(h)))
        torch.testing.assert_close(block(x), expected, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", HAMS)
def test_string_and_instance_build_equivalent_blocks(name):
    torch.manual_seed(3)
    by_name = hb.Hamburger(16, ham=name, rank=4, steps=2, eval_steps=3, groups=2)
    cls = {"nmf": hb.NMF, "vq": hb.VQ, "cd": hb.CD}[name]
    torch.manual_seed(3)
    by_instance = hb.Hamburger(16, ham=cls(rank=4, steps=2, eval_steps=3, groups=2))
    assert repr(by_name) == repr(by_instance)
    a, b = by_name.state_dict(), by_instance.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(2, 16, 4, 4)
    assert torch.equal(by_name.eval()(x), by_instance.eval()(x))
    assert isinstance(by_name.ham, cls)


@pytest.mark.parametrize("name", HAMS)
def test_relu_before_nmf_only(name):
    block = _block(name)
    assert isinstance(block.lower_act, nn.ReLU) == (name == "nmf")
    seen = []
    block.lower_act.register_forward_hook(lambda module, args, out: seen.append(out.min().item()))  # the ham's input
    block(torch.randn(2, 16, 4, 4))
    assert (seen[0] >= 0) == (name == "nmf")


@pytest.mark.parametrize("name", HAMS)
def test_tokens_equal_transposed_block(name):
    tokens = hb.HamburgerTokens(16, ham=name, rank=4, version="v2").eval()
    assert isinstance(tokens.block.lower_bread, nn.Conv1d)
    x = torch.randn(2, 10, 16)
    out = tokens(x)
    assert out.shape == (2, 10, 16)
    assert torch.equal(out, tokens.block(x.transpose(1, 2).contiguous()).transpose(1, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(B, N, C\)"):
        tokens(torch.randn(2, 16, 4, 4))
    with pytest.raises(ValueError, match="spatial_dims is fixed to 1"):
        hb.HamburgerTokens(16, spatial_dims=2)


@pytest.mark.parametrize(("spatial_dims", "shape"), [(1, (2, 16, 9)), (3, (2, 16, 2, 3, 3))])
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_spatial_dims(spatial_dims, shape, version):
    block = _block("vq", spatial_dims=spatial_dims, version=version)
    conv = {1: nn.Conv1d, 3: nn.Conv3d}[spatial_dims]
    assert isinstance(block.lower_bread, conv) and isinstance(block.upper_bread, conv)
    out = block(torch.randn(shape))
    assert out.shape == shape and torch.isfinite(out).all()


def test_group_norm_variant():
    block = _block("nmf", norm_layer="group", version="v1", channels=64)
    assert isinstance(block.upper_norm, nn.GroupNorm) and block.upper_norm.num_groups == 32
    v2 = _block("nmf", norm_layer="group", version="v2", channels=16)
    assert any(isinstance(m, nn.GroupNorm) for m in v2.cheese.modules())
    x = torch.randn(1, 64, 4, 4)  # batch 1 works with GroupNorm in training
    assert torch.isfinite(block.train()(x)).all()


def test_gan_variant_no_norm_spectral_conv():
    block = _block("nmf", norm_layer=None, conv_layer="spectral", gate_init=0.0, out_act=None)
    assert isinstance(block.upper_norm, nn.Identity) and isinstance(block.out_act, nn.Identity)
    assert parametrize.is_parametrized(block.lower_bread) and parametrize.is_parametrized(block.upper_bread)
    x = torch.randn(2, 16, 4, 4)
    assert torch.equal(block(x), x)  # zero gate, no output activation: identity at init
    with torch.no_grad():
        block.coef_ham.fill_(1.0)
    block.eval()
    y = block(x)
    assert not torch.equal(y, x) and torch.isfinite(y).all()
    weight = block.upper_bread.weight  # spectral norm: largest singular value 1
    assert torch.linalg.matrix_norm(weight.flatten(1), ord=2).item() == pytest.approx(1.0, rel=0.05)


def test_extra_repr_shows_hyper_parameters():
    block = _block("cd", version="v2+", dual=True, ham_channels=8, groups=2, init="random", grad_mode="bptt")
    text = repr(block)
    for part in ("16, ham_channels=8, version='v2+', dual=True, gate_init=0.0", "rank=4", "steps=2", "eval_steps=3",
                 "groups=2", "grad_mode='bptt'", "inv_temp=100.0", "ridge=0.1", "spatial=False"):  # fmt: skip
        assert part in text, part
    assert "momentum=0.9" in repr(_block("cd", init="online"))
    assert "solve='newton_schulz'" in repr(hb.CD(4, solve="newton_schulz"))
    assert "grad_steps=3" in repr(hb.NMF(4, grad_mode="truncated", grad_steps=3))


def test_silent(capsys):
    for name in HAMS:
        block = _block(name, version="v2+", dual=True, gate_init=1.0)
        block(torch.randn(2, 16, 4, 4)).sum().backward()
        block.eval()(torch.randn(2, 16, 4, 4))
    hb.HamburgerTokens(16, rank=4)(torch.randn(2, 5, 16))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_import_is_light():
    code = (
        "import sys, hamburger\n"
        "heavy = {'timm', 'lightning', 'pytorch_lightning', 'torchmetrics', 'PIL', 'matplotlib', 'safetensors'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"version": "v3"}, ValueError, r"version must be one of \['v1', 'v2', 'v2\+'\], got 'v3'"),
        ({"dual": True}, ValueError, "dual=True needs version='v2\\+', got version='v1'"),
        ({"channels": 0}, ValueError, "channels must be a positive int, got 0"),
        ({"ham_channels": 0}, ValueError, "ham_channels must be a positive int"),
        ({"ham_channels": 9, "groups": 2}, ValueError, r"ham_channels \(9\) must be divisible by groups \(2\)"),
        ({"version": "v2+", "dual": True, "init": "online", "ham": "cd"}, ValueError, "dual=True needs init='random'"),
        ({"spatial_dims": 4}, ValueError, "spatial_dims must be 1, 2 or 3, got 4"),
        ({"norm_layer": "instance"}, ValueError, "unknown norm_layer 'instance'"),
        ({"conv_layer": "depthwise"}, ValueError, "unknown conv_layer 'depthwise'"),
        ({"init": "learned"}, ValueError, "init='learned' needs grad_mode='bptt'"),
        ({"grad_mode": "exact"}, ValueError, "grad_mode must be one of"),
        # a value of the wrong type is a TypeError, in the block as in the solver
        ({"channels": 16.0}, TypeError, "channels must be a positive int, got float 16.0"),
        ({"channels": True}, TypeError, "channels must be a positive int, got bool True"),
        ({"ham_channels": 8.0}, TypeError, "ham_channels must be a positive int, got float 8.0"),
        ({"rank": 16.0}, TypeError, "rank must be an int >= 1, got float 16.0"),
        ({"version": 2}, TypeError, r"version must be one of \['v1', 'v2', 'v2\+'\], got int 2"),
        ({"dual": "yes", "version": "v2+"}, TypeError, "dual must be a bool, got str 'yes'"),
        ({"gate_init": "0"}, TypeError, "gate_init must be a finite number, got str '0'"),
        ({"gate_init": float("nan")}, ValueError, "gate_init must be a finite number, got nan"),
        ({"spatial_dims": "2"}, TypeError, "spatial_dims must be an int, got str '2'"),
        ({"grad_mode": None}, TypeError, "grad_mode must be one of .*got NoneType None"),
    ],
)
def test_bad_construction(kwargs, error, match):
    name = kwargs.pop("ham", "nmf")
    with pytest.raises(error, match=match):
        _block(name, **kwargs)


def test_bad_input():
    block = _block("vq")
    with pytest.raises(ValueError, match=r"x must have shape \(B, 16, \*spatial\), got \(2, 8, 4, 4\)"):
        block(torch.randn(2, 8, 4, 4))
    with pytest.raises(ValueError, match="NaN or inf"):
        block(torch.full((2, 16, 4, 4), float("nan")))


@pytest.mark.parametrize("init", ["online", "learned"])
def test_dictionary_follows_block_dtype_and_device(init):
    kwargs = {"init": init, "grad_mode": "bptt"}
    block = _block("cd", dtype=torch.float64, **kwargs)
    assert block.ham.bases.dtype == torch.float64
    meta = _block("cd", device="meta", **kwargs)
    assert meta.ham.bases.device.type == "meta"
    assert meta(torch.empty(2, 16, 3, 3, device="meta")).device.type == "meta"


@pytest.mark.parametrize("name", HAMS)
def test_block_autocast_bf16(name):
    block = _block(name, version="v2").eval()
    x = torch.randn(2, 16, 4, 4)
    expected = block(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # bf16 breads: ~3 significant digits
    assert (out - expected).abs().max() < 0.05 * expected.abs().max()
    half = block.to(torch.bfloat16)(x.bfloat16())
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()


# ------------------------------------------------------------------ compile / export
@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", ["nmf", pytest.param("cd", marks=pytest.mark.slow)])
def test_compile_block(name, fresh_dynamo):
    block = _block(name, version="v2+", gate_init=1.0).eval()
    x = torch.randn(2, 16, 4, 4)
    compiled = torch.compile(block, backend="eager", fullgraph=True)
    assert torch.equal(compiled(x), block(x))


EXPORT_CASES = [
    ("nmf", {}),
    ("vq", {}),
    ("cd", {}),
    ("cd", {"solve": "newton_schulz"}),
]


def _export_block(name, options):
    solver = hb.create_solver(name, rank=4, steps=2, eval_steps=3, **options)
    return hb.Hamburger(16, ham=solver, version="v2").eval()


@pytest.mark.parametrize(("name", "options"), EXPORT_CASES)
def test_export_block(name, options, fresh_dynamo):
    block = _export_block(name, options)
    x = torch.randn(2, 16, 5, 4)
    program = torch.export.export(block, (x,))
    torch.testing.assert_close(program.module()(x), block(x), rtol=1e-6, atol=1e-6)
    other = torch.randn(2, 16, 5, 4)  # not constant-folded on the example input
    torch.testing.assert_close(program.module()(other), block(other), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "options"), [("nmf", {}), ("cd", {"solve": "newton_schulz"})])
def test_onnx_export_block(name, options, tmp_path):
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install hamburger[export])")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install hamburger[export])")
    from onnx.reference import ReferenceEvaluator

    block = _export_block(name, options)
    x = torch.randn(2, 16, 5, 4)
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(block, (x,), dynamo=True)
    path = tmp_path / "ham.onnx"
    program.save(str(path))
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    session = ReferenceEvaluator(model)
    (got,) = session.run(None, {session.input_names[0]: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), block(x).detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("ham", ["nmf", "vq", "cd"])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("training", [False, True])
def test_folded_upper_bread_equals_unfolded(ham, groups, training):
    """V1 computes W_u (D C) as (W_u D) C; same values and gradients as conv(ham(x))."""
    block = hb.Hamburger(16, ham=ham, rank=4, groups=groups).double().train(training)
    assert block.fold_upper
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64, requires_grad=True)
    outputs = []
    for fold in (True, False):
        block.fold_upper = fold
        torch.manual_seed(3)  # same random bases in training mode
        y = block(x)
        (grad,) = torch.autograd.grad(y.square().sum(), x)
        outputs.append((y, grad))
    torch.testing.assert_close(outputs[0][0], outputs[1][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(outputs[0][1], outputs[1][1], rtol=1e-10, atol=1e-12)


def test_fold_only_where_it_is_the_same_function():
    assert not hb.Hamburger(16, rank=4, version="v2").fold_upper
    assert not hb.Hamburger(16, rank=4, version="v2+", dual=True).fold_upper
    assert hb.Hamburger(16, rank=4, conv_layer="spectral", norm_layer=None).fold_upper
