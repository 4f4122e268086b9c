"""The device audit (sgg/utils/device_audit.py, docs/training.md "Device audit"): in a training step of every head in
every protocol, no tensor is created without a device, and the only host syncs are the documented ones below; in
inference no tensor is created without a device. A planted mistake in a head is found.
"""
import pytest
import torch

from sgg.modeling.roi_heads.relation_head.predictors import frequency
from sgg.utils.device_audit import DeviceAudit

import head_matrix

pytestmark = pytest.mark.filterwarnings("ignore:word vectors glove")

# The host syncs a training step may make, by site, and why (docs/training.md lists the same).
ALLOWED_SYNCS = {
    # SGB's SGDet pair sampling walks each image's GT relations on the host and draws with the CPU generator
    "sgg/modeling/roi_heads/relation_head/sampling.py:sample_detection_pairs",
    # PackedSequence.batch_sizes is a CPU tensor by PyTorch's design: reading it waits for nothing
    "sgg/modeling/roi_heads/relation_head/predictors/motifs.py:forward",
    # scipy's linear_sum_assignment solves the Hungarian matching on the host
    "sgg/modeling/iterative_sg/matcher.py:hungarian_match",
    # the check that each GT relation names a box of its image (a wrong h5 would otherwise index out of range)
    "sgg/modeling/iterative_sg/targets.py:build_triplet_targets",
    # cdl's shortcut for a batch without a foreground pair, and its check that the labels lie in [0, R)
    "sgg/modeling/roi_heads/relation_head/losses/cdl.py:forward",
    # VCTree's greedy tree is built on the host from the batch's pair scores (one copy per batch)
    "sgg/modeling/roi_heads/relation_head/predictors/vctree_tree.py:build_forest",
}


@pytest.mark.parametrize("name,mode", head_matrix.cases())
def test_training_step_creates_nothing_off_device_and_syncs_only_where_documented(name, mode, tmp_path):
    model, _ = head_matrix.build(name, mode, tmp_path)
    images, targets = head_matrix.batch()
    model.train()
    with DeviceAudit() as audit:
        losses = model(images, targets)
        sum(losses.values()).backward()
    assert dict(audit.factories) == {}, "tensors created without device=: " + str(dict(audit.factories))
    undocumented = {site: n for site, n in audit.syncs.items() if site not in ALLOWED_SYNCS}
    assert undocumented == {}, "host syncs in the training step: " + str(undocumented)

    model.eval()
    with torch.no_grad(), DeviceAudit() as audit:
        model(images, targets)
    assert dict(audit.factories) == {}, "tensors created without device= in inference: " + str(dict(audit.factories))


def test_a_planted_cpu_tensor_and_item_in_a_head_are_found(monkeypatch, tmp_path):
    """The mistakes the audit exists for, planted in FrequencyPredictor's file: both are reported at that site."""
    source = (
        "def forward(self, batch):\n"
        "    output = ORIGINAL(self, batch)\n"
        "    offset = torch.zeros(output.rel_logits.shape[1])\n"  # no device=: CPU on a CUDA run
        "    scale = float(output.rel_logits.abs().max().item())\n"  # host sync every step
        "    return output\n")
    namespace = {"ORIGINAL": frequency.FrequencyPredictor.forward, "torch": torch}
    exec(compile(source, frequency.__file__, "exec"), namespace)
    monkeypatch.setattr(frequency.FrequencyPredictor, "forward", namespace["forward"])
    model, _ = head_matrix.build("FREQ", "predcls", tmp_path)
    images, targets = head_matrix.batch()
    with DeviceAudit() as audit:
        model.train()(images, targets)
    site = "sgg/modeling/roi_heads/relation_head/predictors/frequency.py:forward"
    assert audit.factories == {site: 1}
    assert audit.syncs == {site: 1}


def test_calls_from_outside_the_package_and_with_a_device_are_not_reported():
    with DeviceAudit() as audit:
        x = torch.zeros(3)  # this test file is not sgg/
        x.sum().item()
    assert not audit.factories and not audit.syncs
    with DeviceAudit(package_dir=__file__.rsplit("/", 1)[0]) as audit:
        torch.zeros(3, device="cpu")
        torch.as_tensor(x)  # keeps x's device
        torch.zeros(2)
        bool(x.any())
    assert audit.factories == {"modeling/test_device_audit.py:" +
                               "test_calls_from_outside_the_package_and_with_a_device_are_not_reported": 1}
    assert sum(audit.syncs.values()) == 1
