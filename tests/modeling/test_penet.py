"""PE-Net / SPL: cosine logits, every prototype loss on hand-computed numbers, the VAE, standardisation and fusion,
shapes in the three protocols with forward + backward, and the bad-input errors."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from sgg.modeling.roi_heads.relation_head.losses import RelationLossInputs, build_relation_losses
from sgg.modeling.roi_heads.relation_head.losses.prototype import (euclidean_prototype_loss, l21_similarity_loss,
                                                                   off_diagonal_similarity_loss,
                                                                   prototype_distance_loss, vae_loss)
from sgg.modeling.roi_heads.relation_head.predictors import build_predictor
from sgg.config.sgg_config import ConfigError
from sgg.modeling.roi_heads.relation_head.predictors.penet import PrototypeEmbeddingTrunk, cosine_logits
from sgg.modeling.roi_heads.relation_head.layers.spl import VAE, SPLBranches, standardize, vae_init_std

from test_predictors import MODES, R, ROI_DIM, make_batch, make_cfg, make_statistics

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")
HEAD = "MODEL.ROI_RELATION_HEAD."
SMALL = [HEAD + "PENET.MLP_DIM", 16, HEAD + "PENET.EMBED_DIM", 8, HEAD + "NUM_CLASSES", R]
PENET_LOSS = ("RelationCE", "ObjectCE", "PENetEuclidean", "PENetPrototypeL21", "PENetPrototypeDistance")
SPL_LOSS = ("RelationCE", "ObjectCE", "SPLVAE", "SPLPrototypeSimilarity")


def spl_opts(tmp_path, vis_rows=R, vis_dim=ROI_DIM, con_rows=R, con_dim=12, vis_latent=8, con_latent=3):
    torch.save(torch.randn(vis_rows, vis_dim), tmp_path / "vis.pt")
    torch.save({"prototypes": torch.randn(con_rows, con_dim)}, tmp_path / "con.pt")
    return [HEAD + "SPL.ENABLED", "auto", HEAD + "VIS_PRO_PATH", tmp_path / "vis.pt", HEAD + "VIS_PRO_DIM", ROI_DIM,
            HEAD + "VIS_VAE_INPUT_DIM", ROI_DIM, HEAD + "VIS_VAE_LATENT_DIM", vis_latent,
            HEAD + "CON_PRO_TYPE", "FILE", HEAD + "CON_PRO_PATH", tmp_path / "con.pt", HEAD + "CON_PRO_DIM", con_dim,
            HEAD + "CON_VAE_INPUT_DIM", con_dim, HEAD + "CON_VAE_LATENT_DIM", con_latent]


def build(mode, *extra, loss=PENET_LOSS):
    torch.manual_seed(0)
    cfg = make_cfg("PrototypeEmbeddingNetwork", mode, *SMALL, *extra, HEAD + "LOSS", str(loss))
    stats = make_statistics()
    return cfg, stats, build_predictor(cfg, ROI_DIM, stats)


def loss_inputs(out, batch):
    labels = torch.cat([b.get_field("labels") for b in batch.boxes])
    return RelationLossInputs(out.rel_logits, torch.cat(batch.rel_labels),
                              out.obj_logits if batch.mode != "predcls" else None, labels, batch.num_pairs,
                              aux=out.aux)


# ------------------------------------------------------------------------------------------------- equations
def test_cosine_logits_and_temperature():
    queries = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    prototypes = torch.tensor([[1.0, 0.0], [0.0, 5.0]])
    scale = torch.tensor(math.log(1 / 0.07))  # CLIP init: exp(scale) = 1 / 0.07
    logits = cosine_logits(queries, prototypes, scale)
    # cos((3,4),(1,0)) = 3/5, cos((3,4),(0,1)) = 4/5; (0,2) is (0,1): 0 and 1
    expected = torch.tensor([[0.6, 0.8], [0.0, 1.0]]) / 0.07
    assert torch.allclose(logits, expected, atol=1e-5)
    assert torch.allclose(cosine_logits(queries, prototypes, torch.tensor(0.0)), expected * 0.07, atol=1e-6)


def test_predictor_logit_scale_is_learnt_from_log_inverse_temperature():
    _, _, model = build("predcls", HEAD + "PENET.TEMPERATURE", 0.5)
    assert isinstance(model.logit_scale, torch.nn.Parameter)
    assert model.logit_scale.item() == pytest.approx(math.log(2.0))


def test_euclidean_loss_takes_the_k_nearest_negatives():
    prototypes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    embed = torch.tensor([[1.0, 1.0]])
    # squared distances: to c0 = 2, c1 = 1, c2 = 2, c3 = 5; label 1 -> g+ = 1
    # k = 2: negatives sorted 2, 2, 5 -> mean 2; max(0, 1 - 2 + 1) = 0
    assert euclidean_prototype_loss(embed, prototypes, torch.tensor([1]), 2, 1.0).item() == pytest.approx(0.0)
    # k = 3: mean(2, 2, 5) = 3; max(0, 1 - 3 + 2.5) = 0.5
    assert euclidean_prototype_loss(embed, prototypes, torch.tensor([1]), 3, 2.5).item() == pytest.approx(0.5)
    # label 3 -> g+ = 5; k = 2 over {2, 1, 2} -> (1 + 2) / 2 = 1.5; 5 - 1.5 + 1 = 4.5. The GT column is never a
    # negative even though it would sort last.
    assert euclidean_prototype_loss(embed, prototypes, torch.tensor([3]), 2, 1.0).item() == pytest.approx(4.5)
    # k larger than R - 1 uses every negative: label 3, mean(2, 1, 2) = 5/3; 5 - 5/3 + 1 = 13/3
    assert euclidean_prototype_loss(embed, prototypes, torch.tensor([3]), 10, 1.0).item() == pytest.approx(13 / 3)
    # the batch mean: (0 + 4.5) / 2
    both = euclidean_prototype_loss(embed.repeat(2, 1), prototypes, torch.tensor([1, 3]), 2, 1.0)
    assert both.item() == pytest.approx(2.25)


def test_l21_similarity_loss():
    prototypes = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    # normalised rows: (1,0), (0,1), (s,s) with s = 1/sqrt2. S rows: (1, 0, s), (0, 1, s), (s, s, 1)
    # row norms: sqrt(1.5), sqrt(1.5), sqrt(2); sum / 3^2
    expected = (2 * math.sqrt(1.5) + math.sqrt(2.0)) / 9
    assert l21_similarity_loss(prototypes).item() == pytest.approx(expected, rel=1e-5)


def test_prototype_distance_loss_excludes_the_self_distance():
    prototypes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]], requires_grad=True)
    # squared distances: d01 = 1, d02 = 9, d12 = 10; nearest other: 1, 1, 9 (never the 0 self distance)
    # gamma2 = 7: (6 + 6 + 0) / 3 = 4
    loss = prototype_distance_loss(prototypes, 7.0)
    assert loss.item() == pytest.approx(4.0)
    loss.backward()
    assert torch.isfinite(prototypes.grad).all()
    # gamma2 = 10: (9 + 9 + 1) / 3
    assert prototype_distance_loss(prototypes, 10.0).item() == pytest.approx(19 / 3)


def test_vae_loss_reconstruction_norm_plus_kl():
    x = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    recon = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    mu = torch.tensor([[1.0], [0.0]])
    logvar = torch.tensor([[0.0], [math.log(2.0)]])
    # ||x - x_hat||: 5 and 0 -> mean 2.5
    # KL rows: -0.5 (1 + 0 - 1 - 1) = 0.5 ; -0.5 (1 + ln2 - 0 - 2) = 0.5 - 0.5 ln2 -> mean (1 - 0.5 ln2) / 2
    expected = 2.5 + (1.0 - 0.5 * math.log(2.0)) / 2
    assert vae_loss(x, recon, mu, logvar).item() == pytest.approx(expected, rel=1e-6)


def test_spl_similarity_loss_is_the_mean_off_diagonal_cosine():
    prototypes = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    s = 1 / math.sqrt(2)
    # off-diagonal entries: 0, s, 0, s, s, s -> 4s, divided by (3 - 1)^2
    assert off_diagonal_similarity_loss(prototypes).item() == pytest.approx(4 * s / 4, rel=1e-6)


def test_standardize_rows():
    z = torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 8.0]])
    # row 1: mean 2, std (Bessel) 1 -> (-1, 0, 1); row 2: mean 4, std sqrt((4 + 4 + 16) / 2) = sqrt(12)
    out = standardize(z)
    assert torch.allclose(out[0], torch.tensor([-1.0, 0.0, 1.0]), atol=1e-4)
    assert torch.allclose(out[1], torch.tensor([-2.0, -2.0, 4.0]) / math.sqrt(12.0), atol=1e-4)


def test_fusion_weights_are_parameters_in_the_state_dict_and_mix_by_sigmoid():
    branches = SPLBranches(num_classes=3, mlp_dim=4, dropout=0.0, temperature=0.07, fusion_init=0.0,
                           visual_prototypes=torch.randn(3, 6), vis_latent_dim=2,
                           concept_prototypes=torch.randn(3, 5), con_latent_dim=2)
    names = dict(branches.named_parameters())
    for branch in ("sem", "vis", "con"):
        assert f"fusion.{branch}" in names and names[f"fusion.{branch}"].shape == (1, 3)
        assert f"fusion.{branch}" in branches.state_dict()
    with torch.no_grad():
        branches.fusion["sem"].copy_(torch.tensor([[0.0, math.log(3.0), -math.log(3.0)]]))
    base = torch.tensor([[1.0, 0.0, -1.0]])
    branch_logits = torch.tensor([[0.0, 0.0, 3.0]])  # standardised: mean 1, std sqrt(3) -> (-1, -1, 2) / sqrt3
    fused = branches.fuse("sem", base, branch_logits)
    # sigmoid: 0.5, 0.75, 0.25
    std = torch.tensor([-1.0, -1.0, 2.0]) / math.sqrt(3.0)
    expected = base * torch.tensor([0.5, 0.75, 0.25]) + std * torch.tensor([0.5, 0.25, 0.75])
    assert torch.allclose(fused, expected, atol=1e-4)
    # the state dict round trip keeps them (the reference's unregistered tensors were redrawn at every start)
    other = SPLBranches(3, 4, 0.0, 0.07, 1.0, visual_prototypes=torch.randn(3, 6), vis_latent_dim=2,
                        concept_prototypes=torch.randn(3, 5), con_latent_dim=2)
    other.load_state_dict(branches.state_dict())
    assert torch.equal(other.fusion["sem"], branches.fusion["sem"])


def test_vae_shapes_and_deterministic_eval():
    vae = VAE(8, 3)
    x = torch.randn(5, 8)
    recon, mu, logvar = vae.train()(x)
    assert recon.shape == (5, 8) and mu.shape == logvar.shape == (5, 3)
    vae.eval()
    assert torch.equal(vae(x)[0], vae(x)[0])



def test_vae_init_std_keeps_the_reference_at_4096_and_scales_with_width():
    assert vae_init_std(4096, 0.0) == pytest.approx(0.02)  # the reference's N(0, 0.02)
    assert vae_init_std(1024, 0.0) == pytest.approx(0.04)  # 0.02 * sqrt(4096 / 1024)
    assert vae_init_std(50, -1.0) == pytest.approx(0.02 * (4096 / 50) ** 0.5)
    assert vae_init_std(50, 0.02) == 0.02  # a positive key value is used as it is
    with pytest.raises(ValueError, match="init std must be positive"):
        VAE(8, 3, init_std=0.0)


def test_vae_weights_follow_the_init_std():
    torch.manual_seed(0)
    vae = VAE(256, 64, init_std=0.5)
    weights = torch.cat([m.weight.flatten() for m in vae.modules() if isinstance(m, torch.nn.Linear)])
    assert weights.std().item() == pytest.approx(0.5, rel=0.02)


def test_narrow_vae_with_width_scaled_init_tells_inputs_apart():
    # with the reference's 0.02 on a 50-d VAE the signal shrinks ~10x per layer and every input gets the same
    # reconstruction (SPL's conceptual prototypes then coincide); the width-scaled std keeps them apart
    torch.manual_seed(0)
    x = torch.randn(23, 50)
    flat = VAE(50, 12, init_std=0.02).eval()(x)[0]
    scaled = VAE(50, 12, init_std=vae_init_std(50, 0.0)).eval()(x)[0]
    assert flat.std(dim=0).mean().item() < 1e-6
    assert scaled.std(dim=0).mean().item() > 1e-2


# ------------------------------------------------------------------------------------------- whole predictor
@pytest.mark.parametrize("variant,mode", list(itertools.product(["penet", "spl"], MODES)))
def test_forward_backward_shapes_in_every_protocol(variant, mode, tmp_path):
    extra = spl_opts(tmp_path) if variant == "spl" else []
    cfg, stats, model = build(mode, *extra, loss=SPL_LOSS if variant == "spl" else PENET_LOSS)
    assert (model.spl is not None) == (variant == "spl")
    batch = make_batch(mode, (3, 5), training=True)
    out = model.train()(batch)
    pairs = sum(batch.num_pairs)
    assert out.rel_logits.shape == (pairs, R) and out.obj_logits.shape == (8, len(stats["obj_classes"]))
    assert out.rel_features.shape[0] == pairs
    losses = build_relation_losses(cfg, stats)(loss_inputs(out, batch))
    expected = {"loss_rel", "loss_refine_obj"} | ({"loss_dis", "loss_l21", "loss_proto_dist"} if variant == "penet"
                                                  else {"loss_vis_vae", "loss_con_vae", "loss_sem_simi",
                                                        "loss_vis_simi", "loss_con_simi"})
    assert set(losses) == expected
    sum(losses.values()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    with torch.no_grad():
        eval_out = model.eval()(make_batch(mode, (3, 5, 2), training=False))
    assert torch.isfinite(eval_out.rel_logits).all()


def test_branches_can_be_switched_off(tmp_path):
    _, _, model = build("predcls", *spl_opts(tmp_path), HEAD + "SPL.VISUAL_BRANCH", False,
                        HEAD + "SPL.SEMANTIC_BRANCH", False)
    assert model.spl.branches == ["con"] and not hasattr(model.spl, "vis_vae")
    out = model.train()(make_batch("predcls"))
    assert out.aux.spl.vis_prototypes is None and out.aux.spl.con_prototypes is not None


# ------------------------------------------------------------------------------------------ initialisation
def linear_layers(module):
    return {name: m for name, m in module.named_modules() if isinstance(m, torch.nn.Linear)}


def test_default_init_is_the_references():
    """PyTorch's default Linear init (|w|, |b| <= 1 / sqrt(fan_in), biases not zero) in the trunk, as PE-Net's code;
    maskrcnn-benchmark's make_fc (kaiming-uniform a = 1: |w| <= sqrt(3 / fan_in), zero bias) in the refiner."""
    _, _, model = build("sgcls")
    trunk = linear_layers(model.trunk)
    assert len(trunk) == 19  # every Linear of the trunk, PE-Net variant
    for name, layer in trunk.items():
        bound = layer.in_features ** -0.5
        assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound, name
        assert layer.bias.abs().sum() > 0, name
    beyond_default = 0
    for name in ("hidden", "classifier"):
        layer = getattr(model.refiner, name)
        assert layer.weight.abs().max() <= (3.0 / layer.in_features) ** 0.5 and not layer.bias.any(), name
        beyond_default += int((layer.weight.abs() > layer.in_features ** -0.5).sum())
    assert beyond_default > 0  # kaiming a = 1 reaches sqrt(3) x further than the default init


def test_xavier_init_key_restores_xavier_normal():
    _, _, model = build("sgcls", HEAD + "PENET.INIT", "xavier")
    layers = {**linear_layers(model.trunk), "refiner.hidden": model.refiner.hidden,
              "refiner.classifier": model.refiner.classifier}
    weights = []
    for name, layer in layers.items():
        assert not layer.bias.any(), name
        std = (2.0 / (layer.in_features + layer.out_features)) ** 0.5
        weights.append(layer.weight.flatten() / std)
    assert torch.cat(weights).std().item() == pytest.approx(1.0, abs=0.05)  # N(0, 2 / (fan_in + fan_out))


def prototype_separation_at_start(init, seed):
    """L_euc^r of the untrained prototypes at synthetic VG's sizes (23 predicates, 50-d N(0, 1) words, D = 128)."""
    torch.manual_seed(seed)
    trunk = PrototypeEmbeddingTrunk(["bg", "a"], [f"p{i}" for i in range(23)], 16, 16, "/nonexistent/glove", 50,
                                    128, 0.2, union_gate=True, init=init)
    with torch.no_grad():
        return prototype_distance_loss(trunk.eval().prototypes(), 7.0).item()


def test_reference_init_starts_the_prototype_separation_loss_switched_on():
    """The reference init packs the prototypes together, so L_euc^r starts near gamma2 = 7 (6.8 measured on the
    reference code); Xavier spread them and the loss started at 1-3, i.e. PE-Net's regulariser was mostly off."""
    for seed in range(3):
        assert prototype_separation_at_start("reference", seed) > 6.5
        assert prototype_separation_at_start("xavier", seed) < 3.5


# -------------------------------------------------------------------------------------------------- dropout
def test_spl_visual_and_conceptual_branches_draw_their_own_dropout_mask(tmp_path):
    """The reference calls dropout_rel once per branch; one shared mask would make the two queries' inputs equal."""
    _, _, model = build("predcls", *spl_opts(tmp_path), HEAD + "PENET.DROPOUT", 0.5, loss=SPL_LOSS)
    seen = {}

    def record(name):
        def hook(module, args):
            if args[0].shape[0] == pairs:  # the relation query (vis_project also projects the prototypes)
                seen[name] = args[0].detach()
        return hook

    batch = make_batch("predcls", (4, 5))
    pairs = sum(batch.num_pairs)
    model.spl.vis_project.register_forward_pre_hook(record("vis"))
    model.spl.con_project.register_forward_pre_hook(record("con"))
    out = model.train()(batch)
    hidden = F.relu(out.rel_features).detach()
    for name in ("vis", "con"):  # each is a dropout of ReLU(r): kept entries scaled by 1 / (1 - p)
        kept = seen[name] != 0
        assert torch.allclose(seen[name][kept], 2.0 * hidden[kept])
    assert not torch.equal(seen["vis"] != 0, seen["con"] != 0)
    model.eval()(batch)
    assert torch.equal(seen["vis"], seen["con"])  # no dropout at test time


# ----------------------------------------------------------------------------------------------- bad input
def test_unknown_init_scheme_names_the_key():
    with pytest.raises(ConfigError, match=r"PENET.INIT must be one of reference, xavier, got 'kaiming'"):
        build("predcls", HEAD + "PENET.INIT", "kaiming")


def test_prototype_file_with_the_wrong_class_count_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"VIS_PRO_PATH.*vis\.pt has 4 rows but there are 5"):
        build("predcls", *spl_opts(tmp_path, vis_rows=4))
    with pytest.raises(ValueError, match=r"CON_PRO_PATH.*con\.pt has 7 rows"):
        build("predcls", *spl_opts(tmp_path, con_rows=7))


def test_prototype_file_with_the_wrong_width_names_the_key(tmp_path):
    opts = spl_opts(tmp_path, con_dim=12)
    opts[opts.index(HEAD + "CON_PRO_DIM") + 1] = 10
    opts[opts.index(HEAD + "CON_VAE_INPUT_DIM") + 1] = 10
    with pytest.raises(ValueError, match=r"12-d rows but MODEL.ROI_RELATION_HEAD.CON_PRO_DIM is 10"):
        build("predcls", *opts)


def test_missing_prototype_file_and_empty_path(tmp_path):
    opts = spl_opts(tmp_path)
    opts[opts.index(HEAD + "VIS_PRO_PATH") + 1] = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="VIS_PRO_PATH: prototype file .*nope.pt does not exist"):
        build("predcls", *opts)
    opts = spl_opts(tmp_path)
    opts[opts.index(HEAD + "CON_PRO_PATH") + 1] = ""
    with pytest.raises(ValueError, match="CON_PRO_PATH is empty"):
        build("predcls", *opts, HEAD + "SPL.ENABLED", "on")


def test_vae_latent_larger_than_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="VIS_VAE_LATENT_DIM .* is larger than VIS_VAE_INPUT_DIM"):
        build("predcls", *spl_opts(tmp_path, vis_latent=ROI_DIM + 1))
    with pytest.raises(ValueError, match="CON_VAE_LATENT_DIM .* is larger than CON_VAE_INPUT_DIM"):
        build("predcls", *spl_opts(tmp_path, con_latent=13))
    with pytest.raises(ValueError, match="must be between 1 and the input size 4"):
        VAE(4, 5)


def test_visual_prototype_width_must_match_the_union_features(tmp_path):
    opts = spl_opts(tmp_path)
    opts[opts.index(HEAD + "VIS_PRO_DIM") + 1] = 64
    with pytest.raises(ValueError, match="VIS_PRO_DIM is 64 but the union features are 48-d"):
        build("predcls", *opts)


def test_store_union_and_unknown_switches_are_explained(tmp_path):
    with pytest.raises(ValueError, match="STORE_UNION True .* tools/compute_visual_prototypes.py"):
        build("predcls", *spl_opts(tmp_path), HEAD + "STORE_UNION", True)
    with pytest.raises(ValueError, match="SPL.ENABLED must be 'on', 'off' or 'auto'"):
        build("predcls", HEAD + "SPL.ENABLED", "maybe")
    with pytest.raises(ValueError, match="CON_PRO_TYPE must be one of CLIP, LLAMA, FILE"):
        build("predcls", HEAD + "CON_PRO_TYPE", "BERT")


def test_spl_loss_without_spl_tensors_names_the_key():
    cfg, stats, model = build("predcls", loss=("RelationCE", "SPLVAE"))
    batch = make_batch("predcls")
    out = model.train()(batch)
    with pytest.raises(KeyError, match=r"SPLVAE needs the predictor output's aux\.spl"):
        build_relation_losses(cfg, stats)(loss_inputs(out, batch))


def test_reference_spl_command_line_keys_load(tmp_path):
    """The SPL README's keys (with MODEL. prefixes) are declared with the reference's names."""
    from sgg.config import load_config

    opts = ["MODEL.ROI_RELATION_HEAD.VIS_PRO_DIM", "4096", "MODEL.ROI_RELATION_HEAD.STORE_UNION", "False",
            "MODEL.ROI_RELATION_HEAD.VIS_VAE_LATENT_DIM", "1024", "MODEL.ROI_RELATION_HEAD.VIS_VAE_INPUT_DIM", "4096",
            "MODEL.ROI_RELATION_HEAD.VIS_PRO_PATH", "x.pt", "MODEL.ROI_RELATION_HEAD.CON_PRO_DIM", "2304",
            "MODEL.ROI_RELATION_HEAD.CON_VAE_LATENT_DIM", "576", "MODEL.ROI_RELATION_HEAD.CON_VAE_INPUT_DIM", "2304",
            "MODEL.ROI_RELATION_HEAD.CON_PRO_TYPE", "CLIP", "MODEL.ROI_RELATION_HEAD.CON_PRO_CLIP_PATH", "c.pt",
            "MODEL.ROI_RELATION_HEAD.CON_PRO_LLAMA_PATH", "l.pt", "MODEL.USE_REWEIGHT", "PENET"]
    cfg = load_config(opts=opts)
    from sgg.modeling.roi_heads.relation_head.layers.spl import concept_path, spl_enabled

    assert spl_enabled(cfg) and concept_path(cfg) == ("MODEL.ROI_RELATION_HEAD.CON_PRO_CLIP_PATH", "c.pt")


@pytest.mark.parametrize("detach", [False, True])
def test_detach_vae_input_keeps_the_vae_loss_off_the_union_features(tmp_path, detach):
    cfg, stats, model = build("predcls", *spl_opts(tmp_path), HEAD + "SPL.DETACH_VAE_INPUT", detach, loss=SPL_LOSS)
    batch = make_batch("predcls")
    batch.union_features.requires_grad_(True)
    out = model.train()(batch)
    losses = build_relation_losses(cfg, stats)(loss_inputs(out, batch))
    losses["loss_vis_vae"].backward()
    reached = batch.union_features.grad is not None and batch.union_features.grad.abs().sum() > 0
    assert reached != detach


def test_vae_init_std_key_reaches_both_vaes(tmp_path):
    torch.manual_seed(0)
    _, _, model = build("predcls", *spl_opts(tmp_path), HEAD + "SPL.VAE_INIT_STD", 0.3, loss=SPL_LOSS)
    for vae in (model.spl.vis_vae, model.spl.con_vae):
        weights = torch.cat([m.weight.flatten() for m in vae.modules() if isinstance(m, torch.nn.Linear)])
        assert weights.std().item() == pytest.approx(0.3, rel=0.1)
