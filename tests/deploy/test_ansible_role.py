"""The collection's install role (issue 20 item 2) with the real ``ansible-playbook``: it
makes a virtual environment and installs ctguard from a wheel built from this checkout; a
second run changes nothing, and the modules run the program it installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import ctguard
from ansible_helpers import ANSIBLE_TIMEOUT, RECAP, REPO, Installed, open_dir, tool

PLAY = """
- name: Install ctguard with the role, then audit a tree with what it installed
  hosts: all
  gather_facts: false
  roles:
    - role: ctguard.ctguard.install
  tasks:
    - name: Audit the RHEL 6 example
      ctguard.ctguard.ctguard_doctor:
        executable: "{{ install_venv }}/bin/ctguard"
        root: "{{ tree }}"
      register: audit
    - name: Show what it found
      ansible.builtin.debug:
        msg: "found {{ audit.found | join(',') }} exit {{ audit.exit_status }}"
"""


def test_the_role_installs_from_a_wheel_once(ansible_collection: Installed) -> None:
    with open_dir("ctguard-role-") as top:
        source = top / "source"  # a copy: building writes build/ and egg-info beside it
        shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns(
            "__pycache__", "*.egg-info", "*.so"))  # fmt: skip
        for name in ("pyproject.toml", "setup.py", "README.md"):
            shutil.copy2(REPO / name, source / name)
        wheel = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source),
             "-w", str(top / "wheel")],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert wheel.returncode == 0, wheel.stderr
        (built,) = (top / "wheel").glob("ctguard-*.whl")
        (top / "play.yml").write_text(PLAY)
        venv = top / "venv"
        argv = [
            tool("ansible-playbook"), "-i", "localhost,", "-c", "local", str(top / "play.yml"),
            "-e", f"ansible_python_interpreter={sys.executable}",
            "-e", f"install_venv={venv}", "-e", f"install_python={sys.executable}",
            "-e", f"install_wheel={built}", "-e", "install_link=",
            "-e", f"tree={REPO / 'examples' / 'rhel6-table-full'}",
        ]  # fmt: skip
        env = dict(ansible_collection.env)
        runs = [
            subprocess.run(
                argv, capture_output=True, text=True, timeout=ANSIBLE_TIMEOUT, env=env, check=False
            )
            for _ in range(2)
        ]
        for done in runs:
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
            assert '"msg": "found CT102,' in done.stdout and "exit 2" in done.stdout
        first, second = ({m[1]: int(m[3]) for m in RECAP.finditer(r.stdout)} for r in runs)
        assert first == {"localhost": 3}, runs[0].stdout  # venv, wheel copied, installed
        assert second == {"localhost": 0}, runs[1].stdout
        version = subprocess.run(
            [str(venv / "bin" / "ctguard"), "--version"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert version.stdout.strip() == f"ctguard, version {ctguard.__version__}"
        assert Path(venv / "bin" / "python").exists()
