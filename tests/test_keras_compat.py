"""vidcls relies on a few private Keras names (vidcls/keras_compat.py); a Keras upgrade
that removes one must fail here, naming it, rather than deep inside a training run."""

import pytest

from vidcls.errors import VidclsError
from vidcls.keras_compat import PRIVATE_SYMBOLS, PrivateSymbol, check_private_symbols, missing_private_symbols


def test_every_private_keras_name_vidcls_uses_exists_in_the_installed_keras():
    assert missing_private_symbols() == []
    check_private_symbols()


def test_a_removed_name_is_reported_by_name(monkeypatch):
    import vidcls.keras_compat as compat

    gone = PrivateSymbol("keras:Model", "_a_name_keras_never_had", "example")
    monkeypatch.setattr(compat, "PRIVATE_SYMBOLS", (*PRIVATE_SYMBOLS, gone))
    assert missing_private_symbols() == ["keras:Model._a_name_keras_never_had - example"]
    with pytest.raises(VidclsError, match=r"lacks private names vidcls relies on .*keras:Model\._a_name_keras_never_had"):
        check_private_symbols()


def test_no_private_keras_name_is_used_outside_the_adapter():
    """Outside keras_compat.py: no `keras.src` import and no private attribute of a model or
    layer; overriding a hook listed in PRIVATE_SYMBOLS (and calling super()'s) is allowed."""
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "vidcls"
    hooks = {symbol.name for symbol in PRIVATE_SYMBOLS}
    found = []
    for path in package.rglob("*.py"):
        if path.name == "keras_compat.py":
            continue
        text = path.read_text()
        found += [f"{path.name}: {match}" for match in re.findall(r"\b(?:keras|keras_tuner)\.src\b", text)]
        found += [f"{path.name}: {match}" for match in re.findall(r"\b(?:model|layer|source|target)\._[a-z]\w*", text)]
        found += [f"{path.name}: super().{name}" for name in re.findall(r"super\([^)]*\)\.(_[a-z]\w*)", text)
                  if name not in hooks]
    assert not found, found
