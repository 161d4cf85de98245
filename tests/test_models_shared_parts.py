"""The parts the zoo's builders share (models/_common.py, resnet.resnet_body) and the array checks of data/pipeline.py."""

import re

import numpy as np
import pytest

from keras_mixkd.data.pipeline import check_teacher_logits
from keras_mixkd.models import get_model
from keras_mixkd.models.resnet import cifar_resnet
from keras_mixkd.models.resnet import resnet32x4
from keras_mixkd.models.vgg import vgg8
from keras_mixkd.models.wrn import wide_resnet
from keras_mixkd.models.wrn import wrn_40_2


@pytest.mark.parametrize(
    "build, depth, message",
    [(cifar_resnet, 21, "A CIFAR ResNet has 6n+2 layers, got depth=21"),
     (wide_resnet, 17, "A wide ResNet has 6n+4 layers, got depth=17")],
)
def test_a_depth_off_the_6n_grid_is_refused(build, depth, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build(depth, (16, 16, 32, 64) if build is cifar_resnet else 1, 10, (32, 32, 3), "net")


def test_the_zoo_builders_are_named_and_documented():
    assert resnet32x4.__name__ == "resnet32x4"
    assert "CIFAR ResNet of depth 32, widths (32, 64, 128, 256) (256-d features)" in resnet32x4.__doc__
    assert wrn_40_2.__name__ == "wrn_40_2" and "WRN-40-2 for CIFAR (128-d features)" in wrn_40_2.__doc__
    assert "(height, width, channels), at least 8x8." in vgg8.__doc__
    assert "(height, width, channels), (32, 32, 3) for CIFAR." in wrn_40_2.__doc__


def test_resnet18_is_the_shared_resnet_body_at_its_widths():
    # Four stages of two blocks, the first stride 1 and the others stride 2.
    model = get_model("resnet18", 10)
    names = [layer.name for layer in model.layers]
    assert names[:4] == ["images", "stem_conv", "stem_bn", "stem_relu"]
    for stage, channels in enumerate((64, 128, 256, 512), 1):
        assert model.get_layer(f"stage{stage}_block1_out").output.shape[-1] == channels
        assert (f"stage{stage}_block0_shortcut_conv" in names) == (stage > 1)
    assert model.get_layer("stage4_block1_out").output.shape[1:3] == (4, 4)


@pytest.mark.parametrize(
    "logits, error, message",
    [(np.zeros(4), ValueError, r"teacher_logits must have shape \(N, num_classes\), one row per image; got shape \(4,\)"),
     (np.zeros((4, 3), "int32"), TypeError, "teacher_logits must be float logits, got dtype int32")],
)
def test_teacher_logits_of_the_wrong_shape_or_dtype_are_refused(logits, error, message):
    with pytest.raises(error, match=message):
        check_teacher_logits(logits, 4)
