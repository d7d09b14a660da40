"""The BERT model: configuration, Keras layers, the encoder and its heads."""
