"""Registers the corpus plugin for a plain ``pytest`` run from the repository root."""
pytest_plugins = ["harness.running.plugin"]


def pytest_addoption(parser):
    parser.addoption("--test-bpf-all", dest="test_bpf_all", action="store_true",
                     help="tests/test_field_suites.py: run every imported test_bpf case (long/ and huge/ "
                          "too: several minutes), not only classic/ and ebpf/")
