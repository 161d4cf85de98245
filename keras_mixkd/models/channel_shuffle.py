"""`ChannelShuffle`: the channel permutation of ShuffleNet."""

import keras


@keras.saving.register_keras_serializable(package="keras_mixkd")
class ChannelShuffle(keras.layers.Layer):
    """Interleave the channels of `groups` groups (channels last).

    Channel `g * (C // groups) + j` moves to position `j * groups + g`, the
    permutation of ShuffleNet (Zhang et al. 2018): after it, every group of a
    following grouped convolution sees channels from every previous group.

    Arguments:
        groups: number of channel groups; must divide the channel count.

    Example:

    >>> x = keras.ops.reshape(keras.ops.arange(6.0), (1, 1, 1, 6))
    >>> ChannelShuffle(groups=2)(x)[0, 0, 0]   # [0, 3, 1, 4, 2, 5]
    """

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups:
            raise ValueError(
                f"ChannelShuffle: {channels} channels cannot be split into "
                f"{self.groups} groups."
            )

    def call(self, inputs):
        channels = inputs.shape[-1]
        height, width = keras.ops.shape(inputs)[1], keras.ops.shape(inputs)[2]
        x = keras.ops.reshape(inputs, (-1, height, width, self.groups, channels // self.groups))
        x = keras.ops.transpose(x, (0, 1, 2, 4, 3))
        return keras.ops.reshape(x, (-1, height, width, channels))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}
