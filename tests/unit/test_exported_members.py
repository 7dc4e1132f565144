"""The public API stays deliberate: ``__all__`` lists exactly what signoff exports."""

from __future__ import annotations

import types

import signoff
import signoff.errors
import signoff.testing


def test_all_is_sorted_and_complete():
    for module in (signoff, signoff.errors, signoff.testing):
        exported = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and not isinstance(value, types.ModuleType)
            and getattr(value, "__module__", "").startswith("signoff")
        ]
        assert module.__all__ == sorted(module.__all__), module.__name__
        assert set(exported) <= set(module.__all__), module.__name__


def test_every_error_has_a_code_and_a_docstring():
    for name in signoff.errors.__all__:
        error = getattr(signoff.errors, name)
        assert issubclass(error, signoff.SignoffError)
        assert error.__doc__
        assert error.code in {
            "internal",
            "not_found",
            "conflict",
            "forbidden",
            "invalid_request",
        }
