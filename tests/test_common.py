"""scikit-learn's estimator checks over every estimator, with no expected failures.

(``NormScaler`` is checked in ``test_preprocessing.py``.)
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from ntk_sklearn import NNGPClassifier, NNGPRegressor, NTKClassifier, NTKRegressor


@parametrize_with_checks(
    [
        NTKRegressor(),
        NNGPRegressor(),
        NTKClassifier(),
        NNGPClassifier(),
        NTKRegressor(kernel="empirical", width=32, n_samples=2, random_state=0),
        NNGPClassifier(kernel="empirical", width=32, n_samples=2, random_state=0),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
