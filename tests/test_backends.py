"""Every registered backend passes the same shared checks (tests/backend_checks.py)."""
from pathlib import Path

import pytest

import arches
from backend_checks import SHARED_CHECKS, check_corpus_forms_are_translated

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


@pytest.mark.parametrize("name", arches.names())
@pytest.mark.parametrize("check", SHARED_CHECKS, ids=lambda check: check.__name__)
def test_shared_backend_check(check, name):
    check(arches.get(name))


@pytest.mark.parametrize("name", arches.names())
def test_every_corpus_form_is_translated(name):
    paths = sorted(str(path) for path in CORPUS.rglob("*.data"))
    check_corpus_forms_are_translated(arches.get(name), paths)
