"""The ``mars`` command line: fast help, help everywhere, overrides anywhere, one policy."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from mars_action import cli, threads


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name), sub
                yield from ((f"{name} {n}", h, s) for n, h, s in _subparsers(sub))


def test_every_subcommand_and_option_has_help():
    missing = []
    for name, text, sub in _subparsers(cli.build_parser()):
        if not text:
            missing.append(name)
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"no help text: {missing}"


def test_help_loads_no_heavy_module():
    code = (
        "import sys; from mars_action import cli; cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'cv2', 'av', 'numpy', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_names_in_the_parser_match_the_stages():
    # The parser names these without importing their (heavy) modules.
    from mars_action.data.builder import FORMATS
    from mars_action.data.commands import FORMAT_NAMES
    from mars_action.evaluation.arguments import AGGREGATES
    from mars_action.evaluation.evaluate import AGGREGATES as EVALUATE_AGGREGATES
    from mars_action.inference import commands, export, runtime

    assert sorted(FORMAT_NAMES) == sorted(FORMATS)
    assert AGGREGATES == EVALUATE_AGGREGATES
    assert commands.FORMATS == export.FORMATS
    assert commands.RUNTIMES == runtime.RUNTIMES


def test_overrides_are_taken_after_options():
    parser = cli.build_parser()
    args = cli.parse(parser, ["train", "cfg.yaml", "a=1", "--resume", "schedule.epochs=4"])
    assert args.resume and args.overrides == ["a=1", "schedule.epochs=4"]
    with pytest.raises(SystemExit):
        cli.parse(parser, ["train", "cfg.yaml", "--resume", "--bogus"])
    with pytest.raises(SystemExit):  # a command without overrides takes no KEY=VALUE
        cli.parse(parser, ["report", "runs", "--out", "x.html", "a=1"])


def test_thread_policy_keeps_the_users_settings_and_shares_cores():
    env = {}
    count = threads.apply(env)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and int(env["OMP_NUM_THREADS"]) == count >= 1
    assert count <= threads.cores()
    env = {"OMP_WAIT_POLICY": "active", "OMP_NUM_THREADS": "3"}
    assert threads.apply(env) == 3 and env["OMP_WAIT_POLICY"] == "active"
    assert threads.free_cores(total=8, busy=3) == 5
    assert threads.free_cores(total=2, busy=5) == 1
    assert threads.per_worker(3, free=8) == 2 and threads.per_worker(4, free=2) == 1
    for workers in range(1, 9):
        assert workers * threads.per_worker(workers, free=8) <= 8


def test_mars_sets_the_policy_before_a_handler_runs(tmp_path):
    code = (
        "import os, sys; from mars_action import cli; sys.argv = ['mars', 'report', 'nothing',"
        f" '--out', {str(tmp_path / 'r.html')!r}]\n"
        "try: cli.main(sys.argv[1:])\nexcept SystemExit: pass\n"
        "print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    policy, count = out.stdout.split()[-2:]
    assert policy == "PASSIVE" and 1 <= int(count) <= threads.cores()


def test_a_reader_that_stops_early_gets_no_traceback():
    # `mars data-summary ... | head`: the pipe closes while mars still writes.
    code = (
        "import argparse, sys; from mars_action import cli\n"
        "def handler(args):\n"
        "    for i in range(200000): print('line', i)\n"
        "cli.parse = lambda parser, argv: argparse.Namespace(command='x', handler=handler)\n"
        "sys.exit(cli.main([]))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout.readline() == b"line 0\n"
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert stderr == ""
