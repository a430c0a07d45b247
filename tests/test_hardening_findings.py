"""Issue 23's findings on the estimators, solvers and user models: each with the message or the
result it must give (the kernel-side findings are tested with the kernels)."""

from __future__ import annotations

import pickle
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from ntk_sklearn import NNGPClassifier, NNGPRegressor, NTKClassifier, NTKRegressor
from ntk_sklearn.solvers import CGSolver


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    return x, np.sin(x[:, 0]) + 0.3 * x[:, 1]


def _duplicated(x, y):
    """Every row twice, with opposite targets: no interpolant exists at alpha=0."""
    return np.vstack([x, x]), np.concatenate([y, -y])


# -- CG on an inconsistent singular system: its best iterate, not a divergent one ------------


def test_cg_returns_its_best_iterate_on_an_inconsistent_singular_system():
    # K = [[1, 1], [1, 1]] ⊗ A, b = [v, -v]: b is in K's null space, so every CG step only adds
    # error; the least-squares solution is x = 0 (residual ‖b‖).
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 6))
    a = a @ a.T
    k = np.block([[a, a], [a, a]])
    v = rng.normal(size=6)
    b = np.concatenate([v, -v])
    with pytest.warns(ConvergenceWarning, match="made no progress.*duplicate samples"):
        x = CGSolver(rank=0, max_iter=30).fit(k).apply(b)
    assert np.linalg.norm(k @ x - b) <= np.linalg.norm(b) * (1 + 1e-12)


def test_cg_estimator_on_duplicates_with_inconsistent_targets_stays_bounded(data):
    x, y = data
    xd, yd = _duplicated(x, y)
    with pytest.warns(ConvergenceWarning, match="made no progress"):
        model = NTKRegressor(alpha=0, solver="cg").fit(xd, yd)
    # The least-squares answer: the mean of +y and -y, i.e. 0 (it was ±1e4 to ±1e8).
    np.testing.assert_allclose(model.predict(x), 0.0, atol=1e-6)


def test_cg_best_iterate_keeps_the_solution_on_a_regular_system():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(50, 4))
    k = np.exp(-0.5 * ((z[:, None] - z[None]) ** 2).sum(-1)) + 0.1 * np.eye(50)
    b = rng.normal(size=(50, 2))
    x = CGSolver(tol=1e-10, rank=5).fit(k).apply(b)
    np.testing.assert_allclose(x, np.linalg.solve(k, b), rtol=1e-7, atol=1e-8)


# -- classifiers at alpha=0: no spurious NumPy warning -----------------------------------------


@pytest.mark.parametrize("cls", [NTKClassifier, NNGPClassifier])
def test_classifier_at_alpha_zero_fits_without_numpy_warnings(data, cls):
    x, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the RuntimeWarning "invalid value in divide" fails
        model = cls(alpha=0).fit(x, y > 0)
    assert np.isfinite(model.temperature_)


# -- t=np.inf is the converged limit, as predict_trajectory takes it -------------------------


def test_t_inf_is_t_none(data):
    x, y = data
    at_inf = NTKRegressor(t=np.inf).fit(x, y)
    converged = NTKRegressor(t=None).fit(x, y)
    assert at_inf.t == np.inf  # the parameter as set
    assert at_inf.solver_ == "cholesky"
    np.testing.assert_array_equal(at_inf.predict(x), converged.predict(x))
    np.testing.assert_allclose(
        at_inf.predict_trajectory(x[:3], [np.inf])[0], converged.predict(x[:3]), rtol=1e-10
    )
    for bad in (np.nan, -np.inf, -1.0):
        with pytest.raises(ValueError, match=r"'t' parameter.*\[0.0, inf\] or None"):
            NTKRegressor(t=bad).fit(x, y)


# -- input_scale: numbers only -----------------------------------------------------------------


@pytest.mark.parametrize("scale", [["1", "2", "3"], np.array(["1", "2", "3"]), ["a", "b", "c"]])
def test_input_scale_of_strings_is_refused(data, scale):
    x, y = data
    with pytest.raises(ValueError, match="input_scale must be a positive number.*dtype <U1"):
        NTKRegressor(input_scale=scale).fit(x, y)


def test_input_scale_that_overflows_the_inputs_is_named(data):
    x, y = data
    with pytest.raises(ValueError, match=r"input_scale up to 1e\+300 takes the inputs to"):
        NTKRegressor(input_scale=1e300).fit(x, y)
    with pytest.raises(ValueError, match=r"input_scale up to 1e\+20.*overflow float32"):
        NTKRegressor(input_scale=1e20, dtype="float32").fit(x, y)


def test_input_scale_string_scalar_is_refused(data):
    x, y = data
    with pytest.raises(ValueError, match="'input_scale' parameter.*Got '2'"):
        NTKRegressor(input_scale="2").fit(x, y)


# -- labels ----------------------------------------------------------------------------------


def test_labels_of_mixed_types_are_refused(data):
    x, _ = data
    labels = np.array([1, "a"] * 10, dtype=object)
    with pytest.raises(ValueError, match=r"labels of mixed types \(number, str\).*astype\(str\)"):
        NTKClassifier().fit(x, labels)
    with pytest.raises(ValueError, match="mixed types"):
        NNGPClassifier().fit(x, np.array([1.5, "a", b"b", 2] * 5, dtype=object))


def test_missing_string_labels_are_refused(data):
    x, _ = data
    labels = np.array(["a", None, "b", "b"] * 5, dtype=object)
    with pytest.raises(ValueError, match=r"5 missing labels \(None\), the first at index 1"):
        NTKClassifier().fit(x, labels)


def test_object_labels_of_one_type_still_work(data):
    x, y = data
    labels = np.where(y > 0, "pos", "neg").astype(object)
    model = NTKClassifier().fit(x, labels)
    assert set(model.predict(x)) <= {"pos", "neg"}


# -- user models: tracer errors named as such ----------------------------------------------


def test_untraceable_user_model_is_named_as_such(data):
    x, y = data

    def model(params, inputs):
        if inputs.sum() > 0:  # Python control flow on a traced value
            return inputs @ params["w"]
        return -inputs @ params["w"]

    with pytest.raises(ValueError, match="cannot be traced by JAX.*jnp.where") as info:
        NTKRegressor(kernel=(model, {"w": np.ones((3, 1))})).fit(x, y)
    assert "another shape" not in str(info.value)


def test_user_model_of_the_wrong_shape_still_names_the_shapes(data):
    x, y = data
    with pytest.raises(ValueError, match="another shape.*'w': \\(4, 1\\)"):
        NTKRegressor(kernel=(lambda p, z: z @ p["w"], {"w": np.ones((4, 1))})).fit(x, y)


# -- jax_debug_nans set by the user: the jitter path, and the setting kept --------------------


@pytest.fixture
def debug_nans():
    before = jax.config.jax_debug_nans
    jax.config.update("jax_debug_nans", True)
    yield
    jax.config.update("jax_debug_nans", before)


def test_debug_nans_of_the_user_does_not_break_the_jitter_path(data, debug_nans):
    x, y = data
    xd = np.vstack([x, x])
    with pytest.warns(RuntimeWarning, match="not numerically positive definite"):
        model = NTKRegressor(alpha=0).fit(xd, np.concatenate([y, y]))
    assert model.jitter_ > 0
    np.testing.assert_allclose(model.predict(x), y, atol=1e-3)
    model = NTKRegressor(alpha=1e-3, optimizer="fmin_l_bfgs_b", alpha_bounds=(1e-12, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(xd, np.concatenate([y, y]))
    assert np.isfinite(model.log_marginal_likelihood_value_)
    assert jax.config.jax_debug_nans is True  # the user's setting, restored


# -- pickling with a JAX function as activation ----------------------------------------------


@pytest.mark.parametrize(
    "activation",
    [
        jnp.tanh,
        pytest.param(jax.nn.gelu, marks=pytest.mark.slow),
        pytest.param(jax.nn.softplus, marks=pytest.mark.slow),
    ],
)
def test_fitted_estimator_with_a_jax_activation_pickles(data, activation):
    x, y = data
    model = NTKRegressor(activation=activation).fit(x, y)
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.activation is activation and model.activation is activation
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    classifier = pickle.loads(pickle.dumps(NNGPClassifier(activation=activation).fit(x, y > 0)))
    assert classifier.activation is activation


@pytest.mark.slow
def test_gp_kernels_with_a_jax_activation_pickle_and_fit_in_gpr(data):
    from sklearn.gaussian_process import GaussianProcessRegressor

    from ntk_sklearn.gaussian_process import NNGPKernel, NTKKernel

    x, y = data
    kernel = pickle.loads(pickle.dumps(NNGPKernel(activation=jnp.tanh)))
    assert kernel.activation is jnp.tanh
    # GPR clones the kernel (clone_with_theta): a deep copy of jnp.tanh was a broken function.
    gpr = GaussianProcessRegressor(NTKKernel(activation=jnp.tanh)).fit(x, y)
    loaded = pickle.loads(pickle.dumps(gpr))
    np.testing.assert_array_equal(loaded.predict(x), gpr.predict(x))


def test_unpicklable_activation_says_what_to_pass(data):
    with pytest.raises(pickle.PicklingError, match="cannot be pickled.*top level of a module"):
        pickle.dumps(NTKRegressor(activation=lambda z: jnp.tanh(z)))


# -- user models whose kernel would be silently wrong ------------------------------------------


def test_non_differentiable_user_model_is_refused(data):
    x, y = data
    model = (lambda p, z: jnp.round(z @ p["w"]), {"w": np.ones((3, 2))})
    with pytest.raises(ValueError, match="empirical NTK of your model is zero on all 20 inputs"):
        NTKRegressor(kernel=model).fit(x, y)


def test_empirical_ntk_of_a_non_differentiable_model_warns(data):
    from ntk_sklearn.empirical import empirical_ntk

    x, _ = data
    with pytest.warns(RuntimeWarning, match="zero everywhere"):
        k = empirical_ntk(lambda p, z: jnp.round(z @ p["w"]), {"w": np.ones((3, 2))}, x)
    assert not k.any()  # the value itself is right: the gradients are zero


def test_batch_mixing_user_model_is_refused(data):
    from ntk_sklearn.empirical import empirical_ntk

    x, y = data

    def centred(p, z):  # per example: z - z = 0, so J = 0; on the batch J ≠ 0
        return (z - z.mean(0)) @ p["w"]

    params = {"w": np.ones((3, 2))}
    # The batch function's NTK is not zero (the per-example one is): the two disagree.
    batch_jac = jax.jacobian(lambda p: centred(p, jnp.asarray(x)).sum(1))(params)["w"]
    assert np.abs(batch_jac).max() > 0.1
    with pytest.raises(ValueError, match="mixes the examples of a batch.*x - x.mean"):
        NTKRegressor(kernel=(centred, params)).fit(x, y)
    with pytest.raises(ValueError, match="mixes the examples of a batch"):
        empirical_ntk(centred, params, x)


def test_per_example_user_model_passes_the_batch_check(data):
    from ntk_sklearn.empirical import empirical_ntk

    x, y = data
    params = {"w": np.linspace(-1, 1, 6).reshape(3, 2)}
    k = empirical_ntk(lambda p, z: jnp.tanh(z @ p["w"]), params, x)
    jac = jax.vmap(lambda z: jax.jacobian(lambda p: jnp.tanh(z @ p["w"]))(params)["w"])(x)
    jac = np.asarray(jac).reshape(len(x), 2, -1)
    np.testing.assert_allclose(k, np.einsum("iap,jap->ij", jac, jac) / 2, rtol=1e-5, atol=1e-6)


# -- the evidence optimizer: a stalled search or a bound in the way is said --------------------


def test_stalled_evidence_optimizer_warns_naming_the_bound(data):
    x, y = data
    xd, yd = _duplicated(x, y)
    model = NTKRegressor(optimizer="fmin_l_bfgs_b", alpha=1e-11, alpha_bounds=(1e-12, 1e-10))
    with pytest.warns(ConvergenceWarning, match=r"stalled.*log\(alpha\).*alpha_bounds=\(1e-12"):
        model.fit(xd, yd)
    # The evidence of y and -y on the same inputs grows with the noise: -|y|²/(2 alpha) + ...
    value, grad = model.log_marginal_likelihood(np.log([1.0, 0.1, 1e-11]), eval_gradient=True)
    assert grad[2] > 1e6


def test_evidence_maximum_at_a_bound_warns_like_sklearn(data):
    x, y = data
    xd, yd = _duplicated(x, y)
    model = NNGPRegressor(optimizer="fmin_l_bfgs_b", alpha=1e-3, alpha_bounds=(1e-4, 1e-2))
    with pytest.warns(ConvergenceWarning, match=r"alpha at the upper end of alpha_bounds"):
        model.fit(xd, yd)
    assert model.alpha_ == pytest.approx(1e-2)


@pytest.mark.slow
def test_evidence_maximum_inside_the_bounds_is_silent(data):
    x, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        noisy = y + 0.3 * np.random.default_rng(3).normal(size=y.shape)
        model = NNGPRegressor(optimizer="fmin_l_bfgs_b", alpha_bounds=(1e-6, 10.0))
        model.fit(x, noisy)
    assert 1e-6 < model.alpha_ < 10.0


# -- found by the red team after the fixes -----------------------------------------------------


def test_cg_refuses_non_finite_right_hand_sides():
    with pytest.raises(ValueError, match="B contains NaN or inf"):
        CGSolver().fit(np.eye(3)).apply(np.array([1.0, np.nan, 0.0]))  # returned zeros


def test_label_kinds_bool_against_numbers_and_numpy_strings(data):
    x, _ = data
    with pytest.raises(ValueError, match=r"mixed types \(bool, number\)"):
        NTKClassifier().fit(x, np.array([True, 1] * 10, dtype=object))  # True == 1
    labels = np.array(["a", np.str_("b")] * 10, dtype=object)  # str and NumPy's str: one kind
    assert list(NTKClassifier().fit(x, labels).classes_) == ["a", "b"]


def test_partial_of_a_jax_function_pickles(data):
    import functools

    x, y = data
    act = functools.partial(jax.nn.leaky_relu, negative_slope=0.2)
    model = NTKRegressor(activation=act).fit(x, y)
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_trajectory_memory_plan_counts_the_gains(data, monkeypatch):
    from ntk_sklearn import _memory

    x, y = data
    model = NTKRegressor(t=1.0, solver="eigh").fit(x, y)
    # 10^6 times, 20 training samples: (3 + 2)·20·10^6 values of the gains and the einsum's
    # intermediate, 0.8 GiB (the earlier plan said 0.17 GiB; 10^7 times went past the memory
    # and the process was killed).
    monkeypatch.setattr(_memory, "available_memory", lambda: 2**29)
    with pytest.raises(MemoryError, match=r"predict_trajectory at 1000000 times.*0.8 GiB"):
        model.predict_trajectory(x[:2], np.arange(1e6))


# -- CG's tolerance and preconditioner rank from N ---------------------------------------------


def test_cg_settings_auto_small_and_explicit(data):
    x, y = data
    auto = NNGPClassifier(solver="cg").fit(x, y > 0).cg_solver_
    assert (auto.tol, auto.rank) == (1e-6, 20)  # below 5,000 samples: as before (rank <= n)
    given = NNGPClassifier(solver="cg", tol=1e-9, preconditioner_rank=7).fit(x, y > 0)
    assert (given.cg_solver_.tol, given.cg_solver_.rank) == (1e-9, 7)
    assert given.get_params()["tol"] == 1e-9  # the parameters stay as set


@pytest.mark.slow
def test_cg_settings_auto_at_scale():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 3)).astype(np.float32)
    labels = (x[:, 0] + 0.5 * rng.normal(size=6000) > 0).astype(int)
    clf = NNGPClassifier(alpha=1e-2, dtype="float32").fit(x, labels)
    assert clf.solver_ == "cg"
    assert (clf.cg_solver_.tol, clf.cg_solver_.rank) == (1e-3, 100)  # 6000 // 100 -> 100
    tight = NNGPClassifier(alpha=1e-2, dtype="float32", tol=1e-6).fit(x, labels)
    # The looser tolerance leaves the predicted classes as the tight one's.
    agree = (clf.predict(x[:2000]) == tight.predict(x[:2000])).mean()
    assert agree >= 0.999
    reg = NNGPRegressor(alpha=1e-2, dtype="float32").fit(x, x[:, 0])
    assert (reg.cg_solver_.tol, reg.cg_solver_.rank) == (1e-6, 100)


def test_memory_advice_of_a_float32_fit_does_not_suggest_float32(data, monkeypatch):
    from ntk_sklearn import _memory

    x, y = data
    monkeypatch.setattr(_memory, "available_memory", lambda: 2**10)
    with pytest.raises(MemoryError, match="Use fewer training samples") as info:
        NNGPRegressor(dtype="float32", solver="cg").fit(x, y)
    assert "dtype='float32'" not in str(info.value)
    with pytest.raises(MemoryError, match="Use dtype='float32' \\(half the memory\\)"):
        NNGPRegressor(solver="cg").fit(x, y)


def test_a_serial_stack_with_a_jax_activation_pickles(data):
    from ntk_sklearn.gaussian_process import NNGPKernel
    from ntk_sklearn.kernels import Activation, Dense, serial

    x, y = data
    stack = serial(Dense(), Activation(jnp.tanh), Dense())
    model = NTKRegressor(layers=stack).fit(x, y)
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded.layers == stack and model.layers is stack
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    kernel = pickle.loads(pickle.dumps(NNGPKernel(layers=stack)))
    np.testing.assert_array_equal(kernel(x), NNGPKernel(layers=stack)(x))


def test_boolean_preconditioner_rank_is_named(data):
    x, y = data
    with pytest.raises(ValueError, match="preconditioner_rank must be an int >= 1 or 'auto'"):
        NNGPRegressor(solver="cg", preconditioner_rank=True).fit(x, y)
