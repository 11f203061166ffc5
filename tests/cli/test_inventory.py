"""``run --inventory PATH`` end to end: the simulator's VMs, read back by ``ansible-inventory``."""

from __future__ import annotations

import functools
import json
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import main
from tests.cli._helpers import WAIT, ThreadSimulator

SetEnv = Callable[[dict[str, str]], None]

SPEC = """\
[defaults]
organization = "acme"
package = "rock-1"
disk_template = "templates/ubuntu-22-04"

[[vms]]
hostname = "web-{index:02d}"
count = 2
data_center = "uk-lon-01"
tags = ["web", "public"]             # tags the organization has (checked)
group = "Web Servers"

[[vms]]
hostname = "db-01"
zone = "ams-zone-1"
package = "rock-3"

[[vms]]
hostname = "old-01"
data_center = "uk-lon-01"

[[vms]]
hostname = "bad-01"                  # held by a VM in the trash: the build fails (conflict)
data_center = "uk-lon-01"
"""


def ansible_inventory(path: Path, home: Path) -> tuple[dict[str, Any], str]:
    """``ansible-inventory -i PATH --list``: the parsed JSON and stderr (its warnings)."""
    command = shutil.which("ansible-inventory")
    assert command is not None, "ansible-core (a test extra) is not installed"
    env = {"PATH": str(Path(command).parent), "ANSIBLE_HOME": str(home), "HOME": str(home)}
    done = subprocess.run(
        [command, "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_inventory_of_a_run_is_what_ansible_reads(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """Succeeded VMs are hosts with the API's address; groups are valid names. A VM that
    held a hostname before the fleet (old-01, not provably its own) is left out."""
    (cwd / "fleet.toml").write_text(SPEC)
    old_id = sim.portal.call(sim.running.state.add_existing_vm, "acme", "old-01")
    sim.portal.call(
        functools.partial(sim.running.state.add_existing_vm, in_trash=True), "acme", "bad-01"
    )
    setenv(sim.env())
    code = main(["run", "fleet.toml", "--no-progress", "--inventory", "inventory.yml"])
    out, err = capsys.readouterr()
    assert code == 1, err  # bad-01 fails: its hostname is held by a VM in the trash
    assert "inventory written to inventory.yml" in out
    assert stat.S_IMODE((cwd / "inventory.yml").stat().st_mode) == 0o600
    report = json.loads((cwd / "report.json").read_text())
    addresses = {
        vm["hostname"]: vm["virtual_machine"]["ip_addresses"][0]
        for vm in report["vms"]
        if vm["virtual_machine"] is not None
    }

    listed, warnings = ansible_inventory(cwd / "inventory.yml", cwd)
    assert "WARNING" not in warnings
    hostvars = listed["_meta"]["hostvars"]
    assert sorted(hostvars) == ["db-01", "web-01", "web-02"]
    for hostname, host in hostvars.items():
        assert host["ansible_host"] == addresses[hostname]
    old = {vm["key"]: vm for vm in report["vms"]}["old-01"]
    assert (old["outcome"], old["reason"]) == ("skipped", "not_ours")
    assert old["virtual_machine"]["id"] == old_id
    groups = {name: sorted(group.get("hosts", [])) for name, group in listed.items()}
    assert groups["dc_uk_lon_01"] == ["web-01", "web-02"]
    assert groups["dc_nl_ams_01"] == ["db-01"]
    assert groups["package_rock_1"] == ["web-01", "web-02"]
    assert groups["package_rock_3"] == ["db-01"]
    assert groups["group_Web_Servers"] == ["web-01", "web-02"]
    assert groups["tag_web"] == groups["tag_public"] == ["web-01", "web-02"]
    assert "bad-01" not in hostvars


def test_inventory_in_a_missing_directory_is_refused_before_any_request(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """An inventory path whose directory does not exist exits 2 at once; nothing is built."""
    (cwd / "fleet.toml").write_text(SPEC)
    setenv(sim.env())
    code = main(["run", "fleet.toml", "--no-progress", "--inventory", "nowhere/inventory.yml"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: cannot write the inventory nowhere/inventory.yml: no directory nowhere\n"
    assert sim.hostnames() == []
    assert not (cwd / "report.json").exists()


def test_inventory_from_the_environment(
    cwd: Path, sim: ThreadSimulator, setenv: SetEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    """ORCHESTRATOR_INVENTORY names the inventory like the flag does."""
    (cwd / "fleet.toml").write_text(SPEC)
    setenv({**sim.env(), "ORCHESTRATOR_INVENTORY": "env.yml"})
    main(["run", "fleet.toml", "--no-progress", "--limit", "web-01"])
    listed, _ = ansible_inventory(cwd / "env.yml", cwd)
    assert sorted(listed["_meta"]["hostvars"]) == ["web-01"]
