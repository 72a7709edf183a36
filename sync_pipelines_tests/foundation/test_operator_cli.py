"""``python -m sync_pipelines``: built-in ``runs heal`` and the commands sources plug in."""

from __future__ import annotations

import subprocess
import sys
import types

from sync_pipelines import __main__ as cli
from sync_pipelines.definitions import SOURCE_MODULES
from sync_pipelines_tests.processes import ROOT


def test_source_names_are_read_from_definitions_without_importing_it():
    assert cli.source_names() == [m.__name__.rsplit(".", 1)[-1] for m in SOURCE_MODULES]
    probe = (
        "import sys; from sync_pipelines.__main__ import main; "
        "code = main(['runs', 'heal', '--dry-run']); "
        "loaded = [m for m in ('sync_pipelines.definitions', 'sync_pipelines.cars', 'sync_pipelines.odoo') if m in sys.modules]; "
        "print('loaded:', loaded); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stdout


def test_a_source_cli_module_registers_its_command_and_is_imported_only_when_asked(monkeypatch, tmp_path):
    calls = []

    def register(subparsers):
        calls.append("registered")
        parser = subparsers.add_parser("fakesrc", help="fake source commands")
        parser.add_argument("--count", type=int, default=1)
        parser.set_defaults(func=lambda args: calls.append(("ran", args.count)) or 7)

    module = types.ModuleType("sync_pipelines.fakesrc.cli")
    module.register = register
    monkeypatch.setitem(sys.modules, "sync_pipelines.fakesrc.cli", module)
    monkeypatch.setattr(cli, "source_commands", lambda: ["fakesrc"])

    parser = cli.build_parser(["runs", "heal"])  # another command: fakesrc is only listed
    assert calls == [] and "fakesrc" in parser.format_help()
    assert cli.main(["fakesrc", "--count", "3"]) == 7
    assert calls == ["registered", ("ran", 3)]
