import pytest

from sgg.utils.registry import Registry


def test_register_and_lookup_and_helpful_unknown_name():
    reg = Registry("predictor", "MODEL.ROI_RELATION_HEAD.PREDICTOR")

    @reg.register()
    class MotifPredictor:
        pass

    @reg.register("Freq")
    def make_freq():
        return 1

    assert reg.get("MotifPredictor") is MotifPredictor and reg.get("Freq")() == 1
    assert list(reg) == ["Freq", "MotifPredictor"]
    with pytest.raises(KeyError) as err:
        reg.get("MotifPredicter")
    text = str(err.value)
    assert "MODEL.ROI_RELATION_HEAD.PREDICTOR" in text and "Did you mean: MotifPredictor" in text
    assert "Registered: Freq, MotifPredictor" in text
    with pytest.raises(KeyError, match="already registered"):
        reg.register("Freq")(make_freq)
