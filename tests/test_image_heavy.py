"""The diffusers image backends (edit_image's and generate_image's "diffusers") on CPU with tiny
random-weight pipelines: InstructPix2Pix, Stable Diffusion (text-to-image, and image-to-image through
AutoPipelineForImage2Image) and SD inpainting (9-channel U-Net, AutoPipelineForInpainting), built from
configs in a temporary folder, saved with `save_pretrained` and loaded through exactly the backends'
own loading code (`DiffusionPipeline.from_pretrained(folder, local_files_only=True)`, HF_HUB_OFFLINE=1).
Random weights prove the wiring (sizes, modes, seeds, cancellation, residency, dtypes), not the
quality: the test names say so."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cadenza.errors import BackendUnavailableError, CancelledError, InputError
from cadenza.runtime import ModelRuntime
from cadenza.tools.base import ToolContext
from cadenza.workspace import Workspace

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("diffusers")

from cadenza.tools.image import diffusers_edit, diffusers_generate, hf_image  # noqa: E402
from cadenza.tools.image.common import EditRequest, GenerateRequest  # noqa: E402

# diffusers' Euler schedulers call np.array(tensor, copy=False) (numpy 2 deprecation, harmless)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

# -- tiny components -----------------------------------------------------------------------------
# A CLIP byte-level BPE tokenizer with the 256 byte symbols (alone and word-final) and no merges: any
# text tokenizes, a byte a token. 16 tokens of context. The VAE has 4 blocks (scale factor 8, as the
# real ones) and the U-Net a latent sample size of 8: a native size of 64 px, images of 32-64 px.


def _bytes_to_unicode() -> list[str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tiny_clip_tokenizer():
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for c in _bytes_to_unicode():
            vocab.setdefault(c + suffix, len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    tok.model_max_length = 16
    return tok


def tiny_components(unet_in: int) -> dict:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = tiny_clip_tokenizer()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=len(tok),
        max_position_embeddings=16, projection_dim=16, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    vae = AutoencoderKL(block_out_channels=[4, 4, 4, 4], norm_num_groups=2, latent_channels=4, layers_per_block=1,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        sample_size=64)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=unet_in,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=4, attention_head_dim=4)
    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet, safety_checker=None,
                feature_extractor=None, requires_safety_checker=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a shared 2-core machine one thread is faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_pix2pix(tmp_path_factory):
    """InstructPix2Pix: U-Net of 8 input channels (4 of noise + 4 of the input image's latents), the
    released model's Euler ancestral scheduler (stochastic: the seed matters at every step)."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    pipe = StableDiffusionInstructPix2PixPipeline(
        scheduler=EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                   steps_offset=1),
        **tiny_components(8))
    path = tmp_path_factory.mktemp("pix2pix")
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    """Stable Diffusion text-to-image (U-Net of 4 channels): also image-to-image and (legacy, mask blended
    in latent space) inpainting through the Auto pipelines."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        scheduler=EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                   steps_offset=1),
        **tiny_components(4))
    path = tmp_path_factory.mktemp("sd")
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_sd_inpaint(tmp_path_factory):
    """An inpainting checkpoint: the same components with a U-Net of 9 channels (noise, mask, masked image)."""
    from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline

    pipe = StableDiffusionInpaintPipeline(
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                set_alpha_to_one=False, steps_offset=1), **tiny_components(9))
    path = tmp_path_factory.mktemp("sd-inpaint")
    pipe.save_pretrained(path)
    return path


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # an empty cache: only the folders load
    for env in (diffusers_edit.ENV, diffusers_edit.INPAINT_ENV, diffusers_generate.ENV):
        monkeypatch.delenv(env, raising=False)


def ctx_for(tmp_path, runtime: ModelRuntime | None = None) -> ToolContext:
    return ToolContext(workspace=Workspace.for_run(tmp_path / "out"), step_id="image",
                       runtime=runtime or ModelRuntime(device="cpu"))


def picture(width: int = 50, height: int = 37, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A smooth colour gradient with some noise: non-square, sides not multiples of 8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    if mode == "RGBA":
        img.putalpha(Image.fromarray(((x * 255) // width).astype(np.uint8), "L"))
    return img


class CallSpy:
    """Records the keyword arguments each pipeline call got (through the backend's run_pipeline)."""

    def __init__(self, monkeypatch, module):
        self.calls, self._run = [], module.run_pipeline
        monkeypatch.setattr(module, "run_pipeline", self)

    def __call__(self, ctx, resident, pipe, kwargs, **rest):
        self.calls.append({"pipe": pipe, **kwargs, **rest})
        return self._run(ctx, resident, pipe, kwargs, **rest)


def resident_of(ctx: ToolContext, name) -> hf_image.Resident:
    """The model as the runtime holds it (loaded through the backend's own key and loader)."""
    with ctx.runtime.use(hf_image.runtime_key(str(name)), lambda d, t: diffusers_edit.load(str(name), d, t)) as r:
        return r


# -- edit: InstructPix2Pix -----------------------------------------------------------------------

def test_edit_random_weights_instruct_pix2pix_exact_size_and_operations(tiny_pix2pix, offline, monkeypatch, tmp_path):
    monkeypatch.setenv(diffusers_edit.ENV, str(tiny_pix2pix))
    assert diffusers_edit.BACKEND.unavailable_reason() is None
    spy = CallSpy(monkeypatch, diffusers_edit)
    ctx = ctx_for(tmp_path)
    req = EditRequest(picture(), "make it snowy", seed=5, steps=3, guidance_scale=6.0, image_guidance_scale=1.2)
    res = diffusers_edit.edit(ctx, req)  # the model from CADENZA_IMAGE_EDIT_MODEL
    assert res.image.size == (50, 37) and res.image.mode == "RGB" and not res.resized
    (call,) = spy.calls
    assert type(call["pipe"]).__name__ == "StableDiffusionInstructPix2PixPipeline"
    assert call["image"].size == (48, 40)  # aspect kept, sides at the nearest multiple of 8, under 64 px
    assert call["prompt"] == "make it snowy" and call["image_guidance_scale"] == 1.2 and call["guidance_scale"] == 6.0
    assert call["num_inference_steps"] == 3 and "strength" not in call and call["seed"] == 5
    assert res.operations == [{"op": "diffusers", "params": {
        "model": str(tiny_pix2pix), "pipeline": "StableDiffusionInstructPix2PixPipeline", "mode": "edit", "steps": 3,
        "guidance_scale": 6.0, "image_guidance_scale": 1.2, "seed": 5, "size": [48, 40]}}]
    assert any(n.startswith("diffusers StableDiffusionInstructPix2PixPipeline") for n in ctx.notes)
    # memory from the table, by the class named in model_index.json
    (entry,) = ctx.runtime.loaded()
    assert entry.memory_gb == hf_image.MEMORY_GB["StableDiffusionInstructPix2PixPipeline"]
    # the pipeline's own defaults, reported when the request leaves them
    res = diffusers_edit.edit(ctx, EditRequest(picture(), "make it snowy", steps=2))
    assert res.operations[0]["params"]["guidance_scale"] == 7.5
    assert res.operations[0]["params"]["image_guidance_scale"] == 1.5


def test_edit_random_weights_seed_reproducible(tiny_pix2pix, offline, tmp_path):
    ctx = ctx_for(tmp_path)

    def run(seed):
        req = EditRequest(picture(), "make it red", seed=seed, steps=3, model=str(tiny_pix2pix))
        return np.asarray(diffusers_edit.edit(ctx, req).image)

    a, b, c = run(7), run(7), run(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_edit_random_weights_cancel_stops_denoising(tiny_pix2pix, offline, tmp_path):
    ctx = ctx_for(tmp_path)
    passes = []
    resident_of(ctx, tiny_pix2pix).pipe.unet.register_forward_hook(lambda *a: passes.append(1))
    seen = []

    def progress(done, total):
        seen.append((done, total))
        ctx.cancelled.set()

    ctx.progress = progress
    with pytest.raises(CancelledError):
        diffusers_edit.edit(ctx, EditRequest(picture(), "make it blue", steps=10, model=str(tiny_pix2pix)))
    assert seen == [(1, 10)] and len(passes) == 2  # the 2nd step's callback stopped it: 2 of 10 U-Net passes


def test_edit_random_weights_model_stays_loaded(tiny_pix2pix, offline, monkeypatch, tmp_path):
    loads = []
    real = diffusers_edit.load
    monkeypatch.setattr(diffusers_edit, "load", lambda name, d, t: loads.append(name) or real(name, d, t))
    ctx = ctx_for(tmp_path)
    for seed in (1, 2):
        diffusers_edit.edit(ctx, EditRequest(picture(), "make it snowy", seed=seed, steps=2, model=str(tiny_pix2pix)))
    assert loads == [str(tiny_pix2pix)]  # the second call paid no load


def test_edit_random_weights_rgba_keeps_alpha_and_small_inputs_scale_up(tiny_pix2pix, offline, monkeypatch, tmp_path):
    spy = CallSpy(monkeypatch, diffusers_edit)
    ctx = ctx_for(tmp_path)
    src = picture(21, 13, "RGBA")
    res = diffusers_edit.edit(ctx, EditRequest(src, "make it snowy", steps=2, model=str(tiny_pix2pix)))
    assert res.image.mode == "RGBA" and res.image.size == (21, 13)
    assert res.image.getchannel("A").tobytes() == src.getchannel("A").tobytes()
    assert spy.calls[0]["image"].size == (32, 16)  # under half the native 64 px: scaled up to a 32 px long side


def test_edit_random_weights_inpaint_without_an_inpainting_variant(tiny_pix2pix, offline, tmp_path):
    """InstructPix2Pix has no inpainting pipeline: the whole image is edited and kept where the mask is white."""
    ctx = ctx_for(tmp_path)
    src = picture()
    mask = Image.new("L", src.size, 0)
    mask.paste(255, (10, 5, 30, 25))
    res = diffusers_edit.edit(ctx, EditRequest(src, "make it snowy", mask=mask, steps=2, model=str(tiny_pix2pix)))
    out, before = np.asarray(res.image), np.asarray(src)
    outside = np.asarray(mask) == 0
    np.testing.assert_array_equal(out[outside], before[outside])
    assert not np.array_equal(out[~outside], before[~outside])
    assert res.operations[0]["params"]["mode"] == "edit"
    assert any("no inpainting variant" in n for n in ctx.notes)


# -- edit: image-to-image and inpainting through the Auto pipelines -------------------------------

def test_edit_random_weights_img2img_with_strength(tiny_sd, offline, monkeypatch, tmp_path):
    monkeypatch.setenv(diffusers_generate.ENV, str(tiny_sd))  # img2img's default: generate_image's model
    spy = CallSpy(monkeypatch, diffusers_edit)
    ctx = ctx_for(tmp_path)
    seen = []
    ctx.progress = lambda done, total: seen.append((done, total))
    req = EditRequest(picture(), "a snowy field", seed=3, steps=8, strength=0.5)
    res = diffusers_edit.edit(ctx, req)
    assert res.image.size == (50, 37)
    params = res.operations[0]["params"]
    assert params["pipeline"] == "StableDiffusionImg2ImgPipeline" and params["mode"] == "img2img"
    assert params["strength"] == 0.5 and params["model"] == str(tiny_sd) and "image_guidance_scale" not in params
    assert seen[-1] == (4, 4) and len(seen) == 4  # strength 0.5 of 8 steps: 4 denoising steps
    # derived with from_pipe: the very modules of the loaded text-to-image pipeline
    resident = resident_of(ctx, tiny_sd)
    assert spy.calls[0]["pipe"].unet is resident.pipe.unet and type(resident.pipe).__name__ == "StableDiffusionPipeline"
    again = diffusers_edit.edit(ctx, req)
    np.testing.assert_array_equal(np.asarray(res.image), np.asarray(again.image))



def test_edit_random_weights_small_and_zero_strength(tiny_sd, offline, tmp_path):
    ctx = ctx_for(tmp_path)
    src = picture()
    res = diffusers_edit.edit(ctx, EditRequest(src, "snow", steps=4, strength=0.1, model=str(tiny_sd)))
    assert res.operations[0]["params"]["steps"] == 10  # 4 x 0.1 would denoise no step: 10 steps, 1 denoised
    same = diffusers_edit.edit(ctx, EditRequest(src, "snow", strength=0.0, model=str(tiny_sd)))
    assert same.image.tobytes() == src.tobytes() and same.operations[0]["params"]["steps"] == 0


def test_edit_random_weights_strength_with_an_editing_model(tiny_pix2pix, offline, monkeypatch, tmp_path):
    """InstructPix2Pix has no image-to-image variant: it edits with the instruction and drops the strength."""
    spy = CallSpy(monkeypatch, diffusers_edit)
    ctx = ctx_for(tmp_path)
    res = diffusers_edit.edit(ctx, EditRequest(picture(), "snow", steps=2, strength=0.5, model=str(tiny_pix2pix)))
    assert res.image.size == (50, 37) and "strength" not in spy.calls[0]
    assert res.operations[0]["params"]["mode"] == "edit" and "strength" not in res.operations[0]["params"]
    assert any("no image-to-image variant" in n for n in ctx.notes)
    assert any("takes no strength: ignored" in n for n in ctx.notes)


def test_edit_random_weights_inpaint_with_mask(tiny_sd_inpaint, offline, monkeypatch, tmp_path):
    monkeypatch.setenv(diffusers_edit.INPAINT_ENV, str(tiny_sd_inpaint))
    spy = CallSpy(monkeypatch, diffusers_edit)
    ctx = ctx_for(tmp_path)
    src = picture()
    mask = Image.new("L", src.size, 0)
    mask.paste(255, (8, 8, 40, 30))
    res = diffusers_edit.edit(ctx, EditRequest(src, "a red ball", mask=mask, seed=2, steps=3))
    assert res.image.size == (50, 37)
    call = spy.calls[0]
    assert type(call["pipe"]).__name__ == "StableDiffusionInpaintPipeline"
    assert call["mask_image"].size == call["image"].size == (48, 40) and call["mask_image"].mode == "L"
    assert call["pipe"].unet.config.in_channels == 9
    out, before = np.asarray(res.image), np.asarray(src)
    outside = np.asarray(mask) == 0
    np.testing.assert_array_equal(out[outside], before[outside])  # the input's own pixels outside the mask
    assert not np.array_equal(out[~outside], before[~outside])
    assert res.operations[0]["params"]["mode"] == "inpaint"


def test_edit_random_weights_inpaint_with_a_text_to_image_model(tiny_sd, offline, monkeypatch, tmp_path):
    """No inpainting checkpoint: AutoPipelineForInpainting over the plain (4-channel) SD model."""
    monkeypatch.setenv(diffusers_generate.ENV, str(tiny_sd))
    ctx = ctx_for(tmp_path)
    src = picture()
    mask = Image.new("L", src.size, 0)
    mask.paste(255, (0, 0, 25, 37))
    res = diffusers_edit.edit(ctx, EditRequest(src, "grass", mask=mask, steps=2, strength=0.9))
    params = res.operations[0]["params"]
    assert params["pipeline"] == "StableDiffusionInpaintPipeline" and params["strength"] == 0.9
    assert res.image.size == (50, 37)


# -- generate ------------------------------------------------------------------------------------

def test_generate_random_weights_odd_size_seed_and_negative_prompt(tiny_sd, offline, monkeypatch, tmp_path):
    monkeypatch.setenv(diffusers_generate.ENV, str(tiny_sd))
    assert diffusers_generate.BACKEND.unavailable_reason() is None
    spy = CallSpy(monkeypatch, diffusers_generate)
    ctx = ctx_for(tmp_path)
    req = GenerateRequest("a cat on a red sofa", width=45, height=33, steps=3, seed=4, negative_prompt="blurry",
                          guidance_scale=5.0)
    a = diffusers_generate.generate(ctx, req)
    b = diffusers_generate.generate(ctx, req)
    c = diffusers_generate.generate(ctx, GenerateRequest("a cat on a red sofa", 45, 33, steps=3, seed=5))
    assert a.size == (45, 33) and a.mode == "RGB"
    call = spy.calls[0]
    assert (call["width"], call["height"]) == (48, 32)  # made at multiples of 8, resized back exactly
    assert call["negative_prompt"] == "blurry" and call["guidance_scale"] == 5.0 and call["num_inference_steps"] == 3
    assert "negative_prompt" not in spy.calls[2]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    assert any("48x32, resized to 45x33" in n for n in ctx.notes)
    exact = diffusers_generate.generate(ctx, GenerateRequest("a cat", 64, 40, steps=2))
    assert exact.size == (64, 40) and (spy.calls[-1]["width"], spy.calls[-1]["height"]) == (64, 40)


def test_generate_random_weights_cancel(tiny_sd, offline, tmp_path):
    ctx = ctx_for(tmp_path)
    ctx.progress = lambda done, total: ctx.cancelled.set()
    with pytest.raises(CancelledError):
        diffusers_generate.generate(ctx, GenerateRequest("rain", 32, 32, steps=5, model=str(tiny_sd)))


def test_generate_then_edit_random_weights_share_one_load(tiny_sd, offline, monkeypatch, tmp_path):
    loads = []
    for module in (diffusers_generate, diffusers_edit):
        real = module.load
        monkeypatch.setattr(module, "load", lambda name, d, t, real=real: loads.append(name) or real(name, d, t))
    ctx = ctx_for(tmp_path)
    img = diffusers_generate.generate(ctx, GenerateRequest("a house", 40, 32, steps=2, model=str(tiny_sd)))
    diffusers_generate.generate(ctx, GenerateRequest("a tree", 40, 32, steps=2, model=str(tiny_sd)))
    diffusers_edit.edit(ctx, EditRequest(img, "a house in snow", strength=0.6, steps=2, model=str(tiny_sd)))
    assert loads == [str(tiny_sd)]  # one load for three calls of two tools
    assert [e.key for e in ctx.runtime.loaded()] == [hf_image.runtime_key(str(tiny_sd))]


def test_generate_random_weights_refuses_an_editing_model(tiny_pix2pix, offline, tmp_path):
    with pytest.raises(InputError, match="has no text-to-image variant"):
        diffusers_generate.generate(ctx_for(tmp_path), GenerateRequest("x", 32, 32, steps=1, model=str(tiny_pix2pix)))


# -- models that are not here ---------------------------------------------------------------------

def test_unknown_model_is_one_line_naming_it(offline, tmp_path):
    ctx = ctx_for(tmp_path)
    with pytest.raises(BackendUnavailableError, match="'nobody/no-such-model' is neither a folder nor cached") as e:
        diffusers_edit.edit(ctx, EditRequest(picture(), "snow", model="nobody/no-such-model"))
    assert "\n" not in str(e.value)
    with pytest.raises(BackendUnavailableError, match="'nobody/no-such-model' is neither a folder nor cached"):
        diffusers_generate.generate(ctx, GenerateRequest("x", 32, 32, model="nobody/no-such-model"))
    empty = tmp_path / "not-a-pipeline"
    empty.mkdir()
    with pytest.raises(BackendUnavailableError, match="is not a diffusers pipeline") as e:
        diffusers_edit.edit(ctx, EditRequest(picture(), "snow", model=str(empty)))
    assert "\n" not in str(e.value)
    assert not ctx.runtime.loaded()


def test_without_a_model_says_what_to_set(offline, tmp_path):
    why = diffusers_edit.BACKEND.unavailable_reason()
    assert why.startswith("no image edit model here: set CADENZA_IMAGE_EDIT_MODEL")
    assert "timbrooks/instruct-pix2pix" in why and "\n" not in why
    why = diffusers_generate.BACKEND.unavailable_reason()
    assert why.startswith("no text-to-image model here: set CADENZA_IMAGE_MODEL") and "\n" not in why
    with pytest.raises(BackendUnavailableError, match="no image edit model here"):
        diffusers_edit.edit(ctx_for(tmp_path), EditRequest(picture(), "snow"))
    with pytest.raises(BackendUnavailableError, match="no text-to-image model here"):
        diffusers_generate.generate(ctx_for(tmp_path), GenerateRequest("x", 32, 32))


def test_default_is_the_largest_cached(offline, monkeypatch, tmp_path):
    cache = tmp_path / "hf-cache"
    for repo, cls in (("stabilityai/sdxl-turbo", "StableDiffusionXLPipeline"),
                      ("black-forest-labs/FLUX.1-schnell", "FluxPipeline"),
                      ("stable-diffusion-v1-5/stable-diffusion-v1-5", "StableDiffusionPipeline")):
        folder = cache / f"models--{repo.replace('/', '--')}"
        (folder / "snapshots" / "abc").mkdir(parents=True)
        (folder / "refs").mkdir()
        (folder / "refs" / "main").write_text("abc")
        (folder / "snapshots" / "abc" / "model_index.json").write_text(f'{{"_class_name": "{cls}"}}')
    assert diffusers_generate.default_model() == "black-forest-labs/FLUX.1-schnell"
    assert diffusers_generate.default_model(budget_gb=20.0) == "stabilityai/sdxl-turbo"  # the largest that fits
    assert diffusers_generate.BACKEND.unavailable_reason() is None
    assert hf_image.pipeline_class("stabilityai/sdxl-turbo") == "StableDiffusionXLPipeline"
    assert diffusers_edit.default_model() is None
    img2img = EditRequest(picture(), "x", strength=0.3)
    assert diffusers_edit.model_for(img2img, "img2img", 20.0) == "stabilityai/sdxl-turbo"  # generate_image's model
    monkeypatch.setenv(diffusers_generate.ENV, "my/model")
    assert diffusers_generate.default_model() == "my/model"


def test_work_sizes_keep_the_aspect_and_the_model_limits():
    assert hf_image.work_size(50, 37, 64, 8) == (48, 40)
    assert hf_image.work_size(1000, 750, 512, 8) == (512, 384)  # SD 1.5: long side capped at 512
    assert hf_image.work_size(750, 1000, 1024, 8) == (752, 1000)  # SDXL: under its native size, kept
    assert hf_image.work_size(1920, 1080, 1024, 16) == (1024, 576)  # FLUX: multiples of 16
    assert hf_image.work_size(100, 60, 512, 8) == (256, 152)  # small: scaled up to half the native size
    assert hf_image.round_to(3, 8) == 8


def test_memory_table_covers_the_documented_families():
    for cls in ("StableDiffusionInstructPix2PixPipeline", "StableDiffusionXLPipeline", "FluxPipeline",
                "FluxKontextPipeline", "QwenImageEditPipeline", "StableDiffusionXLInstructPix2PixPipeline"):
        assert hf_image.MEMORY_GB[cls] > 0
    assert diffusers_edit.BACKEND.gpu_memory_gb == hf_image.MEMORY_GB["StableDiffusionInstructPix2PixPipeline"]
    assert hf_image.memory_gb("SomeNewPipeline") == hf_image.DEFAULT_MEMORY_GB
    assert diffusers_edit.BACKEND.extra == diffusers_generate.BACKEND.extra == "gpu-image"


# -- float16, as on a GPU --------------------------------------------------------------------------
# On CPU with dtype float16 (torch runs these ops in half precision on CPU too), and on CUDA when there
# is one (the runtime's own default there: float16).

NO_CUDA = not torch.cuda.is_available()
DEVICES = [pytest.param("cpu", id="cpu-float16"),
           pytest.param("cuda", id="cuda", marks=pytest.mark.skipif(NO_CUDA, reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_diffusers_image_random_weights_float16(device, tiny_pix2pix, tiny_sd, tiny_sd_inpaint, offline, tmp_path):
    runtime = ModelRuntime(device=device, dtype="auto" if device == "cuda" else "float16")
    ctx = ctx_for(tmp_path, runtime)
    src = picture()
    mask = Image.new("L", src.size, 0)
    mask.paste(255, (5, 5, 30, 30))
    edited = diffusers_edit.edit(ctx, EditRequest(src, "snow", seed=1, steps=3, model=str(tiny_pix2pix)))
    again = diffusers_edit.edit(ctx, EditRequest(src, "snow", seed=1, steps=3, model=str(tiny_pix2pix)))
    img2img = diffusers_edit.edit(ctx, EditRequest(src, "snow", seed=1, steps=4, strength=0.5, model=str(tiny_sd)))
    inpainted = diffusers_edit.edit(ctx, EditRequest(src, "a ball", mask=mask, seed=1, steps=3,
                                                     model=str(tiny_sd_inpaint)))
    made = diffusers_generate.generate(ctx, GenerateRequest("a cat", 45, 33, steps=3, seed=1, model=str(tiny_sd)))
    for img in (edited.image, img2img.image, inpainted.image):
        assert img.size == (50, 37)
    assert made.size == (45, 33)
    diff = np.abs(np.asarray(edited.image, np.int16) - np.asarray(again.image, np.int16)).max()
    assert diff <= (0 if device == "cpu" else 2)  # the same seed: the same picture (CUDA kernels may differ by a level)
    assert len(runtime.loaded()) == 3  # generate reused the model img2img loaded
    for entry in runtime.loaded():
        assert entry.dtype == "float16" and entry.device.startswith(device)
        pipe = entry.model.pipe
        assert pipe.unet.dtype == torch.float16 and str(pipe.unet.device).startswith(device)
        assert pipe.vae.dtype == torch.float16 and pipe.text_encoder.dtype == torch.float16


def test_bfloat16_families_on_cuda():
    assert hf_image._load_dtype("FluxPipeline", "cpu", "float32") == torch.float32
    assert hf_image._load_dtype("StableDiffusionXLPipeline", "cuda", "float16") == torch.float16
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        assert hf_image._load_dtype("FluxKontextPipeline", "cuda", "float16") == torch.bfloat16
        assert hf_image._load_dtype("QwenImageEditPipeline", "cuda", "float16") == torch.bfloat16
