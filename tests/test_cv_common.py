"""scikit-learn's estimator checks over the four CV estimators, with no expected failures.

Default parameters: closed-form leave-one-out over the default alphas; one case with 3 folds
and finite times.
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from ntk_sklearn import NNGPClassifierCV, NNGPRegressorCV, NTKClassifierCV, NTKRegressorCV

# About 60 s per estimator on a quiet machine (5.6 min for all five under a load of 15).
pytestmark = pytest.mark.slow


@parametrize_with_checks(
    [
        NTKRegressorCV(),
        NNGPRegressorCV(),
        NTKClassifierCV(),
        NNGPClassifierCV(),
        NTKRegressorCV(alphas=[1e-2, 1.0], ts=[3.0, None], cv=3),
    ]
)
def test_sklearn_compatible_cv_estimator(estimator, check):
    check(estimator)
