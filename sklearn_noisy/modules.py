"""Default torch modules.

A module used with :class:`~sklearn_noisy.MetaLabelCorrectionClassifier` maps a
float32 batch ``X`` of shape ``(n, n_features)`` to class scores (logits) of shape
``(n, n_classes)``.  Methods that work on learned features (``mfrw``) also need the
module split into two parts; the protocol is:

* ``module.backbone``: a sub-module mapping ``X`` to features ``f``;
* ``module.head``: a sub-module mapping ``f`` to logits;
* ``module(X) == module.head(module.backbone(X))``.

:class:`MLP` follows this protocol.
"""

from __future__ import annotations

from torch import nn

__all__ = ["MLP", "has_backbone_head"]


class MLP(nn.Module):
    """Multi-layer perceptron with a backbone/head split.

    Parameters
    ----------
    n_features : int
        Number of input features (filled in by the classifier).
    n_classes : int
        Number of classes (filled in by the classifier).
    hidden_layer_sizes : tuple of int, default=(256, 256)
        Width of each hidden layer of the backbone.  An empty tuple gives a
        linear model whose "features" are the inputs themselves.
    dropout : float, default=0.0
        Dropout probability after each hidden activation.
    batch_norm : bool, default=False
        Whether to put a BatchNorm1d layer before each activation.

    Attributes
    ----------
    backbone : torch.nn.Sequential
        Input to features (the hidden layers).
    head : torch.nn.Linear
        Features to class scores.
    n_features_out : int
        Size of the features the backbone returns.

    Examples
    --------
    >>> import torch
    >>> from sklearn_noisy.modules import MLP
    >>> net = MLP(8, 3, hidden_layer_sizes=(16,))
    >>> net(torch.zeros(5, 8)).shape, net.n_features_out
    (torch.Size([5, 3]), 16)

    As the classifier's network, with extra constructor arguments:

    >>> from sklearn_noisy import MetaLabelCorrectionClassifier
    >>> clf = MetaLabelCorrectionClassifier(module=MLP, module_params={"dropout": 0.1})
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden_layer_sizes: tuple[int, ...] = (256, 256),
        dropout: float = 0.0,
        batch_norm: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for size in hidden_layer_sizes:
            layers.append(nn.Linear(width, size))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        self.n_features_out = width
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)

    def forward(self, X):
        return self.head(self.backbone(X))


def has_backbone_head(module: nn.Module) -> bool:
    """Whether ``module`` declares the ``backbone``/``head`` split.

    Examples
    --------
    >>> from torch import nn
    >>> from sklearn_noisy.modules import MLP, has_backbone_head
    >>> has_backbone_head(MLP(4, 2)), has_backbone_head(nn.Linear(4, 2))
    (True, False)
    """
    return isinstance(getattr(module, "backbone", None), nn.Module) and isinstance(
        getattr(module, "head", None), nn.Module
    )
