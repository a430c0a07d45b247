"""Sphinx configuration: API reference (autosummary + numpydoc) and example gallery.

Build without running the examples (what CI does; seconds)::

    python -m sphinx -W --keep-going -b html -D plot_gallery=0 docs docs/_build/html

Build with the examples run and their figures in the gallery (minutes)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API pages are written into ``docs/generated/`` at every build from :data:`API_MODULES`;
a module is documented by what its ``__all__`` lists.
"""

from __future__ import annotations

import importlib
import inspect
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# Document the checkout these sources belong to, installed or not.
sys.path.insert(0, str(ROOT))

import ntk_sklearn  # noqa: E402

project = "ntk_sklearn"
author = "ntk_sklearn developers"
copyright = "ntk_sklearn developers"
release = ntk_sklearn.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {
    "description": "NTK and NNGP kernels for scikit-learn",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "260px",
}
html_title = f"ntk_sklearn {release}"

# -- API reference -------------------------------------------------------------------------------

#: The public modules, in the order of the API page. Adding a module is one line here; a module
#: that does not exist (yet) is left out, while one that exists but fails to import stops the
#: build.
API_MODULES = [
    "ntk_sklearn",
    "ntk_sklearn.kernels",
    "ntk_sklearn.dynamics",
    "ntk_sklearn.preprocessing",
    "ntk_sklearn.empirical",
    "ntk_sklearn.finite_width",
    "ntk_sklearn.training",
    "ntk_sklearn.solvers",
    "ntk_sklearn.gaussian_process",
    "ntk_sklearn.architectures",
    "ntk_sklearn.datasets",
]

GENERATED = DOCS / "generated"
#: Page names of objects whose names differ only in case from another's in the same module
#: (``kernels.Serial`` and ``kernels.serial``): distinct files on case-insensitive file systems.
autosummary_filename_map: dict[str, str] = {}


def _import_if_present(name: str):
    """The module ``name``, or None when it does not exist; other import errors propagate."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name == name:
            return None
        raise


def _public_names(module) -> list[str]:
    """``__all__``; without one, the classes and functions defined in the module itself."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return sorted(
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and callable(obj)  # functions, classes, and jax.jit-compiled functions
        and getattr(obj, "__module__", None) == module.__name__
    )


def _autosummary(names: list[str]) -> list[str]:
    return [".. autosummary::", "   :toctree: .", ""] + [f"   {n}" for n in names] + [""]


def _module_page(module) -> str:
    """The page of one module: its docstring, then a table per kind, one page per object."""
    groups: dict[str, list[str]] = {"Classes": [], "Functions": [], "Exceptions": []}
    seen: set[str] = set()
    for name in _public_names(module):
        obj = getattr(module, name)
        full = f"{module.__name__}.{name}"
        if full.lower() in seen:
            autosummary_filename_map[full] = f"{full}-{type(obj).__name__}"
        seen.add(full.lower())
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            groups["Exceptions"].append(name)
        elif inspect.isclass(obj):
            groups["Classes"].append(name)
        elif callable(obj):
            groups["Functions"].append(name)
        # Data (``__version__``) is not documented.
    title = f"``{module.__name__}``"
    lines = [
        title,
        "=" * len(title),
        "",
        f".. automodule:: {module.__name__}",
        "",
        f".. currentmodule:: {module.__name__}",
        "",
    ]
    for heading, names in groups.items():
        if names:
            lines += [heading, "-" * len(heading), ""] + _autosummary(names)
    return "\n".join(lines)


def _write_api_pages() -> None:
    """Write ``generated/<module>.rst`` for every module of API_MODULES that exists.

    The folder is rewritten from scratch so that no page of a removed object survives.
    """
    shutil.rmtree(GENERATED, ignore_errors=True)
    GENERATED.mkdir()
    names = []
    for name in API_MODULES:
        module = _import_if_present(name)
        if module is None:
            continue
        (GENERATED / f"{name}.rst").write_text(_module_page(module), encoding="utf-8")
        names.append(name)
    # The summary table and toctree included by api.rst.
    table = _autosummary(names)[:1] + [""] + [f"   {n}" for n in names] + [""]
    toc = [".. toctree::", "   :hidden:", ""] + [f"   generated/{n}" for n in names] + [""]
    (GENERATED / "api_modules.inc").write_text("\n".join(table + toc), encoding="utf-8")


_write_api_pages()

autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_typehints = "none"  # the numpydoc sections carry the types
autodoc_member_order = "bysource"
autodoc_default_options = {"exclude-members": "__init__, __new__"}


def _skip_foreign_member(app, what, name, obj, skip, options):
    """Document, on a class page, only the members that ntk_sklearn defines.

    Methods inherited from scikit-learn (``score``, ``get_params``, metadata routing) are
    scikit-learn's to document, and their docstrings refer to labels of its own documentation;
    those of ``tuple`` and ``Exception`` are Python's. A named tuple's fields (no module) are
    documented by the class's Attributes section.
    """
    if what != "class":
        return None
    target = obj.fget if isinstance(obj, property) else obj
    if not getattr(target, "__module__", None) or not target.__module__.startswith("ntk_sklearn"):
        return True
    return None


def setup(app) -> None:
    app.connect("autodoc-skip-member", _skip_foreign_member)


numpydoc_show_class_members = False  # methods are documented in full by autoclass :members:

# -- Gallery -------------------------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": str(DOCS / "auto_examples"),
    # Scripts named plot_* are run when the gallery is built with execution; others are shown.
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("ntk_sklearn",),
    "backreferences_dir": str(GENERATED / "backreferences"),
    "download_all_examples": False,
    "remove_config_comments": True,
}
