"""`FeatureExtractor`: a model's chosen layers and its output, from one forward pass."""

import keras


class FeatureExtractor:
    """Outputs of a functional model's named layers and of the model, from one call.

    A plain Python object (not a `keras.Layer`) on purpose: its layers are the
    model's own, so Keras must not track them a second time (they would be
    saved twice, and a `Distiller`'s weights would change layout).

    Arguments:
        model: A functional or sequential `keras.Model`.
        layer_names: Names of the layers whose outputs are read; `None`
            stands for the model's output.

    Example:

    >>> extractor = FeatureExtractor(model, ["features"])
    >>> features, logits = extractor(images, training=False)
    >>> features["features"].shape
    """

    def __init__(self, model, layer_names):
        self.layer_names = list(layer_names)
        outputs = [
            model.output if name is None else model.get_layer(name).output
            for name in self.layer_names
        ]
        self.model = keras.Model(model.inputs, outputs + [model.output],
                                 name=f"{model.name}_features")

    def __call__(self, inputs, training):
        """`(features, logits)`: a dict layer name -> output, and the model's output."""
        outputs = self.model(inputs, training=training)
        return dict(zip(self.layer_names, outputs[:-1])), outputs[-1]
