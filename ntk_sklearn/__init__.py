"""ntk_sklearn: scikit-learn estimators on neural tangent and NNGP kernels, computed with JAX.

Importing the package does not change JAX's global configuration: estimators compute in float64
inside a scoped ``jax.enable_x64``.
"""

from ntk_sklearn._cost_notice import LongComputationWarning
from ntk_sklearn.estimators import (
    NNGPClassifier,
    NNGPClassifierCV,
    NNGPRegressor,
    NNGPRegressorCV,
    NTKClassifier,
    NTKClassifierCV,
    NTKRegressor,
    NTKRegressorCV,
)

__version__ = "0.1.0"

__all__ = [
    "LongComputationWarning",
    "NNGPClassifier",
    "NNGPClassifierCV",
    "NNGPRegressor",
    "NNGPRegressorCV",
    "NTKClassifier",
    "NTKClassifierCV",
    "NTKRegressor",
    "NTKRegressorCV",
    "__version__",
]
