"""`ChannelSplit`: one slice of the channels, for ShuffleNetV2's split."""

import keras


@keras.saving.register_keras_serializable(package="keras_mixkd")
class ChannelSplit(keras.layers.Layer):
    """Keep channels `[start, stop)` of a channels-last tensor.

    ShuffleNetV2 blocks split their input into two halves: one passes
    through, the other is convolved. Two `ChannelSplit` layers give the two
    halves and keep the model serialisable.

    Arguments:
        start: first channel kept.
        stop: one past the last channel kept.

    Example:

    >>> x = keras.ops.ones((2, 4, 4, 6))
    >>> ChannelSplit(0, 3)(x).shape
    (2, 4, 4, 3)
    """

    def __init__(self, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.start = int(start)
        self.stop = int(stop)
        if not 0 <= self.start < self.stop:
            raise ValueError(
                f"ChannelSplit needs 0 <= start < stop, got start={start}, stop={stop}."
            )

    def build(self, input_shape):
        if input_shape[-1] is not None and self.stop > input_shape[-1]:
            raise ValueError(
                f"ChannelSplit: stop={self.stop} exceeds the {input_shape[-1]} channels."
            )

    def call(self, inputs):
        return inputs[..., self.start : self.stop]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}
