"""The NNGP and NTK as scikit-learn Gaussian-process kernels (:class:`NNGPKernel`,
:class:`NTKKernel`), for ``GaussianProcessRegressor``, ``GaussianProcessClassifier``,
``SVC(kernel=...)``, ``KernelRidge(kernel=...)`` and sums and products with scikit-learn's
kernels."""

from ntk_sklearn.gaussian_process._kernels import NNGPKernel, NTKKernel

__all__ = ["NNGPKernel", "NTKKernel"]
