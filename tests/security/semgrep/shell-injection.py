# type: ignore
# ruff: noqa
# Semgrep test target for rules/shell-injection.yaml (run with `semgrep --test`); never imported.
import asyncio
import os
import subprocess
from os import system
from subprocess import run
import subprocess as sp


def unsafe(branch, path):
    # ruleid: wormhole.python.subprocess-shell-true
    subprocess.run(f"git checkout {branch}", shell=True, check=True)
    # ruleid: wormhole.python.subprocess-shell-true
    subprocess.check_output("ls " + path, cwd="/tmp", shell=True)
    # ruleid: wormhole.python.subprocess-shell-true
    proc = subprocess.Popen("make build", shell=True)
    # ruleid: wormhole.python.subprocess-shell-true
    run(["sh", "-c", branch], shell=True)

    # ruleid: wormhole.python.os-system-nonliteral
    os.system("rm -rf " + path)
    # ruleid: wormhole.python.os-system-nonliteral
    out = os.popen(f"du -sh {path}").read()
    # ruleid: wormhole.python.os-system-nonliteral
    status = subprocess.getoutput("cat %s" % path)
    # ruleid: wormhole.python.os-system-nonliteral
    task = asyncio.create_subprocess_shell(branch)
    # ruleid: wormhole.python.os-system-nonliteral
    system(branch)
    # ruleid: wormhole.python.subprocess-shell-true
    sp.call(branch, shell=True)
    return proc, out, status, task


def safe(branch, path):
    # ok: wormhole.python.subprocess-shell-true
    subprocess.run(["git", "checkout", branch], check=True)
    # ok: wormhole.python.subprocess-shell-true
    subprocess.run(["ls", path], shell=False)
    # ok: wormhole.python.os-system-nonliteral
    os.system("sync")
    # ok: wormhole.python.os-system-nonliteral
    os.popen("uname -a")
    # ok: wormhole.python.os-system-nonliteral
    os.path.join(path, branch)
