"""Registers vidcls's Keras classes when Keras is imported, without importing Keras here.

A `.keras` file names its layers by registered name (`vidcls>AttentionLSTMClassifier`);
Keras finds them only once `vidcls.models` has run its `register_keras_serializable`
decorators. Importing `vidcls.models` at `import vidcls` would cost TensorFlow's import
(seconds) for every command, `vidcls --help` included. Instead, `import vidcls` installs
a finder that waits for the `keras` module: once Keras has finished importing, whoever
imported it, `vidcls.models` is imported too. If Keras is already imported, the classes
are registered at once.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings


def register_when_keras_loads() -> None:
    if "keras" in sys.modules:
        _register()
    elif not any(isinstance(finder, _KerasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _KerasFinder())


def _register() -> None:
    try:
        importlib.import_module("vidcls.models")
    except ImportError as error:  # a Keras vidcls does not support: say so, do not break Keras's import
        warnings.warn(f"vidcls could not register its Keras classes ({error}); load vidcls's .keras files "
                      "with vidcls.models.load_model", stacklevel=2)


class _KerasFinder(importlib.abc.MetaPathFinder):
    """Finds `keras` as the other finders would, with a loader that registers vidcls's
    classes after Keras's own module has run. It stays until Keras is really loaded: a
    library may only look for Keras first (`importlib.util.find_spec("keras")`, as
    TensorFlow does) and import it later."""

    def __init__(self):
        self.searching = False

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras" or self.searching:
            return None
        self.searching = True  # the other finders answer the question below
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader, self)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader, finder: _KerasFinder):
        self.loader = loader
        self.finder = finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        _register()

    def __getattr__(self, name):  # get_resource_reader, is_package, ...: the real loader's
        return getattr(self.loader, name)
