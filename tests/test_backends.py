"""Every registered backend passes the same shared checks (tests/backend_checks.py)."""
from pathlib import Path

import pytest

import arches
from arches import external
from backend_checks import RUNTIME_CHECKS, SHARED_CHECKS, check_corpus_forms_are_translated
from harness.cases.corpus import find_case_files

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


@pytest.mark.parametrize("name", arches.names())
@pytest.mark.parametrize("check", SHARED_CHECKS, ids=lambda check: check.__name__)
def test_shared_backend_check(check, name):
    check(arches.get(name))


@pytest.mark.parametrize("name", arches.names())
def test_every_corpus_form_is_translated(name):
    paths = [str(path) for path in find_case_files([CORPUS])]  # (large/ cases: translated in their own runs)
    check_corpus_forms_are_translated(arches.get(name), paths)


def available_external_targets() -> list[str]:
    """The external JITs configured and available here (uBPF's with UBPF_SRC and a C compiler)."""
    return [name for name in arches.external_names()
            if external.configured(name) and external.availability(name) is None]


@pytest.mark.parametrize("name", available_external_targets())
@pytest.mark.parametrize("check", RUNTIME_CHECKS, ids=lambda check: check.__name__)
def test_external_jit_runtime_check(check, name):
    """External JITs pass the checks of their code at run time: every form (but the packet loads
    a JIT may reject) like the interpreter, faults described, the C ABI kept, data not decoded."""
    check(arches.get(name))
