"""`BatchNormalization`: Keras's layer, with PyTorch's fused kernel under the PyTorch backend."""

import keras


@keras.saving.register_keras_serializable(package="keras_mixkd")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computing with one fused kernel under PyTorch.

    Under the PyTorch backend Keras normalises with separate element-wise
    operations (the batch moments, then subtract, multiply, add: several
    passes over the activations, and as many in the backward pass). This
    layer calls `torch.native_batch_norm` instead, the kernel of
    `torch.nn.BatchNorm2d`, on 4-D float32 inputs (channels first, or
    channels last through a free permuted view): same formula, same
    moving-statistics update as Keras's (the biased batch variance, Keras's
    `momentum`), equal to Keras's layer to float round-off. On a 2-core CPU
    it made a resnet110 -> resnet20 distillation step about 1.5x faster
    (docs/performance.md). Everything else (other backends, masks, renorm,
    other dtypes or ranks) is Keras's own code path.

    Arguments:
        As `keras.layers.BatchNormalization`.

    Example:

    >>> layer = BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5)
    >>> y = layer(keras.ops.ones((8, 4, 5, 5)), training=True)
    """

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import torch

        axis = self.axis if self.axis >= 0 else self.axis + 4
        # torch normalises over dim 1; an NHWC tensor permuted is a view, channels-last in memory.
        x = inputs if axis == 1 else inputs.permute(0, 3, 1, 2)
        gamma, beta = self.gamma.value, self.beta.value
        if training and self.trainable:
            outputs, mean, inverse_std = torch.native_batch_norm(x, gamma, beta, None, None, True, 0.0, self.epsilon)
            with torch.no_grad():
                # The batch's biased variance, as Keras's moving average uses it.
                variance = inverse_std.pow(-2) - self.epsilon
                self.moving_mean.assign(self.moving_mean.value * self.momentum + mean * (1.0 - self.momentum))
                self.moving_variance.assign(
                    self.moving_variance.value * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs = torch.native_batch_norm(x, gamma, beta, self.moving_mean.value, self.moving_variance.value,
                                              False, 0.0, self.epsilon)[0]
        return outputs if axis == 1 else outputs.permute(0, 2, 3, 1)

    def _fused(self, inputs, mask):
        """Whether this call can take PyTorch's fused kernel."""
        return (keras.backend.backend() == "torch" and mask is None and not self.renorm and self.center
                and self.scale and len(inputs.shape) == 4 and self.axis in (1, 3, -1, -3)
                and keras.backend.standardize_dtype(inputs.dtype) == "float32"
                and self.compute_dtype == "float32" and self.variable_dtype == "float32")
