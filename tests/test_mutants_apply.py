"""tools/mutants.py stays runnable: each mutation's code is still in vidcls, once, and the
tests named to catch it still exist. A mutation left behind by a change stopped the whole
mutation check for a session before anyone ran it; this notices in `make test`."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _mutations():
    spec = importlib.util.spec_from_file_location("vidcls_mutants", ROOT / "tools" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["vidcls_mutants"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["vidcls_mutants"]
    return module.MUTATIONS


def test_every_mutation_applies_once_and_names_existing_tests():
    mutations = _mutations()
    assert len({mutation.name for mutation in mutations}) == len(mutations)
    stale = [f"{m.name}: found {(ROOT / m.path).read_text().count(m.old)} times in {m.path}"
             for m in mutations if (ROOT / m.path).read_text().count(m.old) != 1]
    assert not stale, "\n".join(stale)
    missing = []
    for mutation in mutations:
        for node in mutation.tests:
            path, _, name = node.partition("::")
            test_file = ROOT / path
            function = name.split("[")[0]
            if not test_file.is_file() or (function and f"def {function}(" not in test_file.read_text()):
                missing.append(f"{mutation.name}: {node}")
    assert not missing, "\n".join(missing)
