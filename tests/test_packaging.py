"""The harness as a package: installed by pip, a pytest plugin and a command from any directory.

The first test builds a fresh virtual environment and installs the checkout into it the way a
user would (``pip install /path/to/checkout``), then runs a corpus copied to an unrelated
directory with plain ``pytest`` and with the console script.
"""
import json
import os
import shutil
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_pip_install_then_pytest_and_the_command_work_from_an_unrelated_directory(tmp_path):
    # the checkout's files that a build reads (setuptools writes build/ into the tree it builds)
    source = tmp_path / "checkout"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".*", "build", "reports", "corpus", "tests", "bench", "findings", "__pycache__", "*.egg-info"))
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(environment)  # this pip installs into it (--python): faster
    python = environment / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-compile",
                              str(source)], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    if install.returncode != 0 and "No matching distribution" in install.stderr + install.stdout:
        pytest.skip(f"pip cannot reach a package index for the dependencies here: {install.stderr.strip()[-300:]}")
    assert install.returncode == 0, install.stdout + install.stderr
    corpus = tmp_path / "elsewhere" / "mycorpus"
    shutil.copytree(ROOT / "corpus" / "alu32", corpus)
    away = tmp_path / "elsewhere"
    # no environment leaking the checkout in (PYTHONPATH) or switching plugins off
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS")}
    plain = subprocess.run([str(environment / "bin" / "pytest"), "mycorpus", "--arch", "x86_64", "-n", "2"],
                           cwd=away, capture_output=True, text=True, timeout=600, env=env)
    cases = len(list(corpus.glob("*.data")))
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert f"{cases} passed" in plain.stdout and "eBPF harness summary" in plain.stdout
    where = subprocess.run([str(python), "-c", "import harness; print(harness.__file__)"], cwd=away,
                           capture_output=True, text=True, env=env).stdout
    assert str(environment) in where and str(ROOT) not in where  # the installed copy, not the checkout
    command = environment / "bin" / "ebpf-jit-harness"
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and "Unicorn 2.1.4" in version.stdout
    run = subprocess.run([str(command), "run", "mycorpus", "--arch", "x86_64", "-n", "2", "--json", "r.json"],
                         cwd=away, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads((away / "r.json").read_text())
    assert document["summary"] == {"x86_64": {"pass": cases, "fail": 0, "error": 0, "skip": 0, "unsupported": 0,
                                              "known": 0, "stale": 0}}
    assert document["run"]["versions"]["Unicorn"] == "2.1.4" and document["run"]["targets"] == ["x86_64"]


def test_the_plugin_and_the_command_are_registered():
    plugins = {entry.name: entry.value for entry in metadata.entry_points(group="pytest11")}
    assert plugins.get("harness.running.plugin") == "harness.running.plugin"
    scripts = {entry.name: entry.value for entry in metadata.entry_points(group="console_scripts")}
    assert scripts.get("ebpf-jit-harness") == "harness.cli:main"


def test_version_names_the_harness_and_its_engines():
    completed = subprocess.run([sys.executable, "-m", "harness", "--version"], capture_output=True, text=True)
    assert completed.returncode == 0
    line = completed.stdout.strip()
    for name in ("unicorn", "keystone-engine", "capstone"):
        assert metadata.version(name) in line, (name, line)
    assert line.startswith(f"ebpf-jit-harness {metadata.version('ebpf-jit-harness')} (Unicorn ")


@pytest.mark.skipif(not os.environ.get("HARNESS_EXPECT_INSTALLED"),
                    reason="tox sets HARNESS_EXPECT_INSTALLED: there the suite must test the installed package")
def test_the_suite_tests_the_installed_package_not_the_checkout():
    import arches
    import harness

    for module in (harness, arches):
        where = Path(module.__file__).resolve()
        assert where.parent != ROOT / module.__name__ and "site-packages" in where.parts, where
    child = subprocess.run([sys.executable, "-c", "import harness; print(harness.__file__)"], cwd=ROOT,
                           capture_output=True, text=True)  # as the tests start the CLI: from the checkout
    assert child.returncode == 0 and "site-packages" in Path(child.stdout.strip()).parts, child.stdout
