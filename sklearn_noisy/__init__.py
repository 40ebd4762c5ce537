"""sklearn_noisy: learn from noisy labels with a small trusted set, the scikit-learn way."""

from ._classifier import MetaLabelCorrectionClassifier, MetaSetWarning, NoTrustedSetWarning
from .model_selection import TrustedKFold
from .pipeline import make_meta_pipeline

__version__ = "0.1.0"

__all__ = [
    "MetaLabelCorrectionClassifier",
    "MetaSetWarning",
    "NoTrustedSetWarning",
    "TrustedKFold",
    "make_meta_pipeline",
    "__version__",
]
