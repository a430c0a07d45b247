"""ntk_sklearn: scikit-learn estimators on neural tangent and NNGP kernels, computed with JAX."""

__version__ = "0.1.0"
