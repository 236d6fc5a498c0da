"""vidcls: train video action classifiers on cached CNN features, ship them as TFLite.

Importing this package is cheap; TensorFlow is imported only by the stages that need it.
"""

__version__ = "0.1.0"
