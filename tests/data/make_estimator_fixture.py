"""Record the public outputs of the estimators: a regression pin of commit e51b094's behaviour.

This fixture is *not* an independent truth (those live in the other tests: closed forms,
neural-tangents' golden values, scikit-learn itself). It pins the outputs of the estimators as
they were at commit e51b094, before the estimator core was restructured (issue 21), so that the
restructuring can be checked to change nothing. ``tests/test_estimator_fixture.py`` recomputes
every entry and compares to 1e-7 (1e-4 for the optimizer's results).

Run from the repository root to re-record (only when a behaviour change is intended; the
recorded file was made on e51b094 itself, ``PYTHONPATH=<checkout of e51b094>``)::

    python tests/data/make_estimator_fixture.py
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor

from ntk_sklearn import NNGPClassifier, NNGPRegressor, NTKClassifier, NTKRegressor
from ntk_sklearn.gaussian_process import NNGPKernel, NTKKernel

PATH = Path(__file__).with_name("estimator_fixture.npz")
#: Entries compared to 1e-4 (optimizer results); the others to 1e-7.
LOOSE = ("optimizer_", "gp_")


def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] ** 2
    Y2 = np.column_stack([y, np.cos(X[:, 2])])
    X_test = rng.normal(size=(9, 5))
    labels = np.where(X[:, 0] + X[:, 1] > 0.3, "a", np.where(X[:, 2] > 0, "b", "c"))
    w = rng.uniform(0.2, 3.0, size=40)
    images = rng.normal(size=(24, 6 * 6 * 2))
    y_img = images[:, :10].sum(axis=1)
    return X, y, Y2, X_test, labels, w, images, y_img


def outputs() -> dict[str, np.ndarray]:
    X, y, Y2, Xt, labels, w, images, y_img = data()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 1-2. Regressors at t=None: mean, std, cov.
        for cls in (NTKRegressor, NNGPRegressor):
            name = cls.__name__
            m = cls(depth=2, alpha=1e-2).fit(X, y)
            mean, std = m.predict(Xt, return_std=True)
            _, cov = m.predict(Xt, return_cov=True)
            out[f"{name}_tNone_mean"], out[f"{name}_tNone_std"] = mean, std
            out[f"{name}_tNone_cov"] = cov
            out[f"{name}_tNone_lml"] = np.array(m.log_marginal_likelihood_value_)
            # 3-4. Finite t, two targets.
            m = cls(depth=2, alpha=1e-2, t=3.0, learning_rate=2.0).fit(X, Y2)
            mean, cov = m.predict(Xt, return_cov=True)
            out[f"{name}_t3_mean"], out[f"{name}_t3_cov"] = mean, cov
            out[f"{name}_t3_std"] = m.predict(Xt, return_std=True)[1]
            # 5. Trajectories over several t.
            out[f"{name}_trajectory"] = m.predict_trajectory(Xt, [0.0, 0.5, 3.0, 50.0, np.inf])
            # 6. Sample weights (t=None and finite t).
            m = cls(alpha=1e-2).fit(X, y, sample_weight=w)
            out[f"{name}_weighted_mean"], out[f"{name}_weighted_std"] = m.predict(
                Xt, return_std=True
            )
            out[f"{name}_weighted_lml"] = np.array(m.log_marginal_likelihood_value_)
            m = cls(alpha=1e-2, t=2.0).fit(X, y, sample_weight=w)
            out[f"{name}_weighted_t2_mean"] = m.predict(Xt)
            # 7. CG (t=None) and Lanczos (finite t).
            m = cls(alpha=1e-2, solver="cg", tol=1e-10).fit(X, Y2)
            out[f"{name}_cg_mean"] = m.predict(Xt)
            out[f"{name}_cg_std"] = m.predict(Xt, return_std=True)[1]
            m = cls(alpha=1e-2, solver="cg", tol=1e-10, t=3.0).fit(X, Y2)
            out[f"{name}_lanczos_mean"] = m.predict(Xt)
            out[f"{name}_cg_trajectory"] = m.predict_trajectory(Xt, [0.5, 3.0, np.inf])
        # 8-9. Classifiers: decision function and probabilities (direct, finite t, CG).
        for cls in (NTKClassifier, NNGPClassifier):
            name = cls.__name__
            for tag, kw in (
                ("tNone", {}),
                ("t5", {"t": 5.0}),
                ("cg", {"solver": "cg", "tol": 1e-10}),
                ("weighted", {"sample_weight": w}),
            ):
                sw = kw.pop("sample_weight", None)
                c = cls(depth=2, alpha=1e-2, **kw).fit(X, labels, sample_weight=sw)
                out[f"{name}_{tag}_decision"] = c.decision_function(Xt)
                out[f"{name}_{tag}_proba"] = c.predict_proba(Xt)
        # 10. Conv with pooling.
        for pooling in ("gap", "flatten"):
            m = NTKRegressor(
                architecture="conv", image_shape=(6, 6, 2), depth=1, pooling=pooling, alpha=1e-2
            ).fit(images[:20], y_img[:20])
            mean, std = m.predict(images[20:], return_std=True)
            out[f"conv_{pooling}_mean"], out[f"conv_{pooling}_std"] = mean, std
        # 11. The evidence optimizer: learned values and evidence.
        for cls in (NTKRegressor, NNGPRegressor):
            m = cls(optimizer="fmin_l_bfgs_b", alpha=0.1).fit(X, y)
            out[f"optimizer_{cls.__name__}_learned"] = np.array([m.w_std_, m.b_std_, m.alpha_])
            out[f"optimizer_{cls.__name__}_lml"] = np.array(m.log_marginal_likelihood_value_)
            out[f"optimizer_{cls.__name__}_mean"] = m.predict(Xt)
            value, grad = m.log_marginal_likelihood(np.log([1.3, 0.2, 0.05]), eval_gradient=True)
            out[f"{cls.__name__}_lml_at_theta"] = np.array(value)
            out[f"{cls.__name__}_lml_grad_at_theta"] = grad
        m = NNGPRegressor(
            optimizer="fmin_l_bfgs_b", input_scale_bounds=(1e-2, 1e2), w_std_bounds="fixed"
        ).fit(X, y)
        out["optimizer_scales_learned"] = np.concatenate([[m.b_std_, m.alpha_], m.input_scale_])
        out["optimizer_scales_lml"] = np.array(m.log_marginal_likelihood_value_)
        # 12. Input scales, fixed.
        scale = np.array([1.0, 2.0, 0.5, 1.5, 0.1])
        for tag, s in (("scalar", 0.7), ("vector", scale)):
            m = NTKRegressor(input_scale=s, alpha=1e-2).fit(X, y)
            out[f"input_scale_{tag}_mean"], out[f"input_scale_{tag}_std"] = m.predict(
                Xt, return_std=True
            )
        # 13-16. NNGPKernel/NTKKernel inside GaussianProcessRegressor.
        for kcls in (NNGPKernel, NTKKernel):
            name = kcls.__name__
            kernel = kcls(depth=2, w_std=1.2, b_std=0.3)
            out[f"{name}_K"] = kernel(X[:10])
            out[f"{name}_K_cross"] = kernel(X[:10], Xt)
            out[f"{name}_diag"] = kernel.diag(Xt)
            K, grad = kernel(X[:10], eval_gradient=True)
            # By name: the order of theta is not part of the pin (issue 21 changed it).
            order = [h.name for h in kernel.hyperparameters]
            out[f"{name}_K_grad"] = grad[..., [order.index(n) for n in ("w_std", "b_std")]]
            gp = GaussianProcessRegressor(kernel, alpha=1e-2, random_state=0).fit(X, y)
            out[f"gp_{name}_stds"] = np.array([gp.kernel_.w_std, gp.kernel_.b_std])
            out[f"gp_{name}_lml"] = np.array(gp.log_marginal_likelihood_value_)
            out[f"gp_{name}_mean"], out[f"gp_{name}_std"] = gp.predict(Xt, return_std=True)
            gp = GaussianProcessRegressor(kernel, alpha=1e-2, optimizer=None).fit(X, y)
            out[f"{name}_gp_fixed_lml"] = np.array(gp.log_marginal_likelihood_value_)
            out[f"{name}_gp_fixed_mean"] = gp.predict(Xt)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


if __name__ == "__main__":
    np.savez_compressed(PATH, **outputs())
    print(f"wrote {PATH}")
