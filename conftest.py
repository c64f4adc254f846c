"""Options of this repository's own tests (the corpus plugin itself is loaded by its pytest11
entry point, pyproject.toml, wherever the package is installed)."""


def pytest_addoption(parser):
    parser.addoption("--test-bpf-all", dest="test_bpf_all", action="store_true",
                     help="tests/test_field_suites.py: run every imported test_bpf case (long/ and huge/ "
                          "too: several minutes), not only classic/ and ebpf/")
