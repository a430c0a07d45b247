"""The estimators: scikit-learn regressors and classifiers on NTK and NNGP kernels.

Where each concern lives: ``_base`` (parameters, pickling), ``_params`` (constraints),
``_checks`` (validation at the boundary), ``_kernels`` (the kernels of ``X``), ``_fit`` (the
solver and its memory plan), ``_evidence`` (learned hyperparameters), ``_posterior`` (means,
covariances, trajectories), ``_regressors``, ``_classifiers`` and ``_calibration`` (the
classifiers' temperature), ``_cv*`` (the CV estimators), ``_kernel_cache`` (``memory=``).
The linear algebra lives in :mod:`ntk_sklearn.solvers`, the kernels in
:mod:`ntk_sklearn.kernels`.
"""

from ntk_sklearn.estimators._classifiers import NNGPClassifier, NTKClassifier
from ntk_sklearn.estimators._cv_estimators import (
    NNGPClassifierCV,
    NNGPRegressorCV,
    NTKClassifierCV,
    NTKRegressorCV,
)
from ntk_sklearn.estimators._regressors import NNGPRegressor, NTKRegressor

__all__ = [
    "NNGPClassifier",
    "NNGPClassifierCV",
    "NNGPRegressor",
    "NNGPRegressorCV",
    "NTKClassifier",
    "NTKClassifierCV",
    "NTKRegressor",
    "NTKRegressorCV",
]
