"""Spec content rules: lookups, defaults, required fields, hostnames, types, limits."""

from __future__ import annotations

import pytest

from orchestrator.errors import SpecIssue
from orchestrator.spec import MAX_ISSUES, SpecDefaults
from orchestrator.vm_request import Lookup, VmRequest

from ._helpers import DEFAULTS, entry, issues, one_issue, parse

YAML_DEFAULTS = "defaults: {organization: acme, package: rock-1, data_center: uk-lon-01}\n"

INTERFACES_EXAMPLE = """\
[defaults]
organization = "acme"                 # sub_domain, or "org_..." id
data_center = "uk-lon-01"             # permalink, or "loc_..." id
package = "rock-3"
disk_template = "templates/ubuntu-22-04"
disk_template_options = { install_agent = "true" }

[[vms]]
hostname = "web-{index:02d}"          # expanded for index = 1..count
count = 3
package = "rock-1"

[[vms]]
hostname = "db-01"
zone = "lon-zone-1"                   # zone instead of data_center
network = "uk-lon-01-public"
"""


def test_interfaces_example_expands_to_its_four_vms() -> None:
    """The example of INTERFACES.md gives web-01..03 (rock-1, uk-lon-01) and db-01 (zone)."""
    spec = parse(INTERFACES_EXAMPLE)
    acme = Lookup("sub_domain", "acme")
    template = Lookup("permalink", "templates/ubuntu-22-04")
    webs = [
        VmRequest(
            key=f"web-0{i}",
            hostname=f"web-0{i}",
            organization=acme,
            package=Lookup("permalink", "rock-1"),
            data_center=Lookup("permalink", "uk-lon-01"),
            disk_template=template,
            disk_template_options={"install_agent": "true"},
            entry_index=0,
        )
        for i in (1, 2, 3)
    ]
    db = VmRequest(
        key="db-01",
        hostname="db-01",
        organization=acme,
        package=Lookup("permalink", "rock-3"),
        zone=Lookup("permalink", "lon-zone-1"),
        disk_template=template,
        disk_template_options={"install_agent": "true"},
        network=Lookup("permalink", "uk-lon-01-public"),
        entry_index=1,
    )
    assert spec.vms == (*webs, db)
    assert list(spec.by_key()) == ["web-01", "web-02", "web-03", "db-01"]
    assert spec.path == "spec.toml"


# ------------------------------------------------------------------------ lookups

ID16 = "abcdefgh12345678"


@pytest.mark.parametrize(
    ("line", "field", "expected"),
    [
        ('organization = "acme"', "organization", Lookup("sub_domain", "acme")),
        (f'organization = "org_{ID16}"', "organization", Lookup("id", f"org_{ID16}")),
        (f'organization = {{ id = "org_{ID16}" }}', "organization", Lookup("id", f"org_{ID16}")),
        ('organization = { sub_domain = "acme" }', "organization", Lookup("sub_domain", "acme")),
        ('zone = "lon-zone-1"', "zone", Lookup("permalink", "lon-zone-1")),
        (f'zone = "zone_{ID16}"', "zone", Lookup("id", f"zone_{ID16}")),
        (f'data_center = "loc_{ID16}"', "data_center", Lookup("id", f"loc_{ID16}")),
        (
            'data_center = { permalink = "nl-ams-01" }',
            "data_center",
            Lookup("permalink", "nl-ams-01"),
        ),
        (f'package = "vmpkg_{ID16}"', "package", Lookup("id", f"vmpkg_{ID16}")),
        ('package = "rock-6"', "package", Lookup("permalink", "rock-6")),
        (f'disk_template = "dtpl_{ID16}"', "disk_template", Lookup("id", f"dtpl_{ID16}")),
        (
            'disk_template = "templates/ubuntu-22-04"',
            "disk_template",
            Lookup("permalink", "templates/ubuntu-22-04"),
        ),
        (f'network = "netw_{ID16}"', "network", Lookup("id", f"netw_{ID16}")),
        (
            'network = { permalink = "uk-lon-01-public" }',
            "network",
            Lookup("permalink", "uk-lon-01-public"),
        ),
        ('package = "my_package"', "package", Lookup("permalink", "my_package")),
    ],
)
def test_lookup_forms(line: str, field: str, expected: Lookup) -> None:
    """A lookup is a name, a prefixed id, or a one-key table, and becomes the matching Lookup."""
    (vm,) = parse(entry(f'hostname = "a"\n{line}')).vms
    assert getattr(vm, field) == expected


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        (
            f'package = "loc_{ID16}"',
            "package",
            f"'loc_{ID16}' is a data center id; package needs a package permalink "
            "or an id starting with 'vmpkg_'",
        ),
        (
            f'organization = "vm_{ID16}"',
            "organization",
            f"'vm_{ID16}' is a virtual machine id; organization needs an organization "
            "sub_domain or an id starting with 'org_'",
        ),
        (
            f'network = {{ id = "dtpl_{ID16}" }}',
            "network",
            f"'dtpl_{ID16}' is a disk template id; network needs a network permalink "
            "or an id starting with 'netw_'",
        ),
        (
            'organization = "org_short"',
            "organization",
            "'org_short' is not an organization id: ids are 'org_' followed by 16 letters "
            "or digits",
        ),
        (
            'zone = { id = "lon-zone-1" }',
            "zone",
            "'lon-zone-1' is not a zone id: ids are 'zone_' followed by 16 letters or digits",
        ),
        (
            'zone = "lon zone"',
            "zone",
            "'lon zone' is not a valid zone permalink (letters, digits and . _ / -, "
            "starting with a letter or digit, at most 128)",
        ),
        (
            'organization = "ac.me"',
            "organization",
            "'ac.me' is not a valid organization sub_domain (letters, digits and '-', "
            "at most 63 characters)",
        ),
        (
            'network = { id = "x", permalink = "y" }',
            "network",
            "a network table needs exactly one of 'id' or 'permalink' (found 'id', 'permalink')",
        ),
        (
            "network = {}",
            "network",
            "a network table needs exactly one of 'id' or 'permalink' (found none)",
        ),
        (
            'organization = { sub_domian = "acme" }',
            "organization",
            "organization table: unknown key 'sub_domian' (did you mean 'sub_domain'?)",
        ),
        (
            'organization = { permalink = "acme" }',
            "organization",
            "organization table: unknown key 'permalink'",
        ),
        ("package = { id = 5 }", "package", "package.id must be a string, not an integer"),
        (
            "package = 5",
            "package",
            "must be a string (permalink or 'vmpkg_' id) or a table with 'id' or "
            "'permalink', not an integer",
        ),
        (
            'disk_template = "x\\u0000y"',
            "disk_template",
            "'x\\x00y' is not a valid disk template permalink (letters, digits and . _ / -, "
            "starting with a letter or digit, at most 128)",
        ),
    ],
)
def test_lookup_errors(line: str, field: str, message: str) -> None:
    """A bad lookup gives one issue naming the field, with the reason."""
    issue = one_issue(entry(f'hostname = "a"\n{line}'))
    assert (issue.field, issue.message, issue.entry, issue.line) == (field, message, 0, 8)


# -------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("text", "field", "message", "line"),
    [
        (
            entry('hostname = "a"\npakage = "x"'),
            "pakage",
            "unknown key 'pakage' (did you mean 'package'?)",
            8,
        ),
        (
            entry('hostname = "a"\nhost_name = "x"'),
            "host_name",
            "unknown key 'host_name' (did you mean 'hostname'?)",
            8,
        ),
        (entry('hostname = "a"\nzzz = 1'), "zzz", "unknown key 'zzz'", 8),
        (DEFAULTS + '[[vm]]\nhostname = "a"\n', "vm", "unknown key 'vm' (did you mean 'vms'?)", 5),
        (
            DEFAULTS + 'hostname = "x"\n[[vms]]\nhostname = "a"\n',
            "defaults.hostname",
            "'hostname' cannot be in defaults: it belongs on each VM",
            5,
        ),
        (
            DEFAULTS + 'count = 3\n[[vms]]\nhostname = "a"\n',
            "defaults.count",
            "'count' cannot be in defaults: it belongs on each VM",
            5,
        ),
        (
            DEFAULTS + 'netwrk = "x"\n[[vms]]\nhostname = "a"\n',
            "defaults.netwrk",
            "unknown key 'netwrk' (did you mean 'network'?)",
            5,
        ),
    ],
)
def test_unknown_keys_are_errors_with_suggestions(
    text: str, field: str, message: str, line: int
) -> None:
    """Unknown keys anywhere are errors that suggest the closest known key."""
    issue = issues(text)[0]
    assert (issue.field, issue.message, issue.line) == (field, message, line)


# ------------------------------------------------------------------ required fields


@pytest.mark.parametrize(
    ("defaults", "field", "message"),
    [
        (
            'data_center = "uk-lon-01"\npackage = "rock-1"',
            "organization",
            "organization is required: set it on the VM, in defaults, or with "
            "KATAPULT_ORGANIZATION",
        ),
        (
            'organization = "acme"\ndata_center = "uk-lon-01"',
            "package",
            "package is required: set it on the VM or in defaults",
        ),
        (
            'organization = "acme"\npackage = "rock-1"',
            "data_center",
            "a zone or data_center is required: set one on the VM, in defaults, or with "
            "KATAPULT_DATA_CENTER",
        ),
    ],
)
def test_required_fields_after_defaults(defaults: str, field: str, message: str) -> None:
    """Organization, package and a location are required once defaults are merged."""
    issue = one_issue(f'[defaults]\n{defaults}\n[[vms]]\nhostname = "db-01"\n')
    assert (issue.field, issue.message, issue.entry, issue.hostname, issue.line) == (
        field,
        message,
        0,
        "db-01",
        4,
    )


def test_hostname_is_required() -> None:
    """An entry without a hostname is an error that says why the hostname matters."""
    issue = one_issue(entry("count = 2"))
    assert (issue.field, issue.message, issue.line) == (
        "hostname",
        "hostname is required (the orchestrator uses it to avoid duplicates)",
        6,
    )


def test_settings_defaults_fill_organization_and_data_center() -> None:
    """SpecDefaults from the settings fill what the entry and [defaults] leave out."""
    text = '[[vms]]\nhostname = "a"\npackage = "rock-1"\n'
    (vm,) = parse(
        text, defaults=SpecDefaults(organization=f"org_{ID16}", data_center="nl-ams-01")
    ).vms
    assert vm.organization == Lookup("id", f"org_{ID16}")
    assert vm.data_center == Lookup("permalink", "nl-ams-01")


def test_spec_defaults_win_over_settings_defaults() -> None:
    """The spec's own [defaults] win over the settings' defaults."""
    (vm,) = parse(entry('hostname = "a"'), defaults=SpecDefaults("other", "us-nyc-01")).vms
    assert (vm.organization.value, vm.data_center) == ("acme", Lookup("permalink", "uk-lon-01"))


def test_settings_data_center_does_not_fill_an_entry_with_a_zone() -> None:
    """An entry with a zone keeps just the zone: the settings' data center is not added."""
    text = (
        '[[vms]]\nhostname = "a"\norganization = "acme"\npackage = "rock-1"\nzone = "ams-zone-1"\n'
    )
    (vm,) = parse(text, defaults=SpecDefaults(data_center="uk-lon-01")).vms
    assert (vm.zone, vm.data_center) == (Lookup("permalink", "ams-zone-1"), None)


def test_invalid_settings_default_is_one_issue() -> None:
    """A bad settings default is reported once, not as a missing field on every entry."""
    one = '[[vms]]\nhostname = "{}"\npackage = "rock-1"\nzone = "z"\n'
    text = one.format("a") + one.format("b")
    issue = one_issue(text, defaults=SpecDefaults(organization="not valid"))
    assert (issue.field, issue.entry, issue.message) == (
        "organization",
        None,
        "the katapult.organization setting is invalid: 'not valid' is not a valid organization "
        "sub_domain (letters, digits and '-', at most 63 characters)",
    )


# ---------------------------------------------------------------- defaults merging


def test_entry_values_win_over_defaults() -> None:
    """An entry's own value replaces the default; fields it leaves out come from defaults."""
    (vm,) = parse(entry('hostname = "a"\npackage = "rock-3"')).vms
    assert (vm.package.value, vm.organization.value) == ("rock-3", "acme")


def test_tables_merge_key_by_key_and_lists_replace() -> None:
    """disk_template_options and annotations merge per key (entry wins); lists replace."""
    text = """\
[defaults]
organization = "acme"
data_center = "uk-lon-01"
package = "rock-1"
disk_template_options = { install_agent = true, locale = "en" }
annotations = { team = "web", env = "prod" }
tags = ["a", "b"]
ssh_keys = ["k1"]

[[vms]]
hostname = "a"
disk_template_options = { locale = "fr" }
annotations = { env = "dev" }
tags = ["c"]
"""
    (vm,) = parse(text).vms
    assert vm.disk_template_options == {"install_agent": "true", "locale": "fr"}
    assert vm.annotations == {"team": "web", "env": "dev"}
    assert (vm.tags, vm.ssh_keys) == (("c",), ("k1",))


@pytest.mark.parametrize(
    ("line", "zone", "data_center"),
    [
        ('zone = "lon-zone-1"', Lookup("permalink", "lon-zone-1"), None),
        ('data_center = "nl-ams-01"', None, Lookup("permalink", "nl-ams-01")),
        ("", None, Lookup("permalink", "uk-lon-01")),
    ],
)
def test_location_is_one_unit(line: str, zone: Lookup | None, data_center: Lookup | None) -> None:
    """An entry naming a zone or data center drops both location defaults."""
    (vm,) = parse(entry(f'hostname = "a"\n{line}')).vms
    assert (vm.zone, vm.data_center) == (zone, data_center)


def test_yaml_null_means_not_given() -> None:
    """An explicit null in YAML leaves the field to the defaults."""
    text = YAML_DEFAULTS + "vms:\n  - {hostname: a, package: null}\n"
    (vm,) = parse(text, "yaml").vms
    assert vm.package == Lookup("permalink", "rock-1")


def test_build_from_spec_fields_map_onto_vm_request() -> None:
    """cpu_cores, memory_gb, system_disk_gb, ssh_keys, tags, name, description, group map over."""
    body = """hostname = "a"
cpu_cores = 4
memory_gb = 8
system_disk_gb = 40
ssh_keys = ["alice-laptop", "SHA256:HKL2Wtfo+Is/GuxWApY", "key_uk6wLQYdApzutwlL"]
tags = ["x", "y"]
name = "A VM"
description = "line one\\nline two"
group = "ci"
"""
    (vm,) = parse(entry(body)).vms
    assert (vm.cpu_cores, vm.memory_gb, vm.system_disk_gb) == (4, 8, 40)
    assert vm.ssh_keys == ("alice-laptop", "SHA256:HKL2Wtfo+Is/GuxWApY", "key_uk6wLQYdApzutwlL")
    assert vm.tags == ("x", "y")
    assert (vm.name, vm.description, vm.group) == ("A VM", "line one\nline two", "ci")
    assert vm.uses_spec_xml


@pytest.mark.parametrize("spec_field", ["cpu_cores = 2", 'tags = ["web"]', 'name = "n"'])
def test_zone_and_data_center_both_refused_for_build_from_spec(spec_field: str) -> None:
    """A spec XML names a zone or a data center, not both: such an entry is a spec problem."""
    issue = one_issue(
        entry(f'hostname = "a"\nzone = "lon-zone-1"\ndata_center = "uk-lon-01"\n{spec_field}')
    )
    assert (issue.entry, issue.hostname, issue.field) == (0, "a", "zone")
    assert "zone and data_center are both set" in issue.message
    assert "not both" in issue.message


def test_zone_and_data_center_both_are_fine_for_plain_build() -> None:
    """The plain /build endpoint takes both (the API checks that the zone is in the DC)."""
    (vm,) = parse(entry('hostname = "a"\nzone = "lon-zone-1"\ndata_center = "uk-lon-01"')).vms
    assert vm.zone is not None
    assert vm.data_center is not None


def test_table_values_become_strings() -> None:
    """Integers and booleans in disk_template_options/annotations become their text."""
    body = (
        'hostname = "a"\n'
        'disk_template_options = { install_agent = true, swap = false, size = 10, x = "" }'
    )
    (vm,) = parse(entry(body)).vms
    assert vm.disk_template_options == {
        "install_agent": "true",
        "swap": "false",
        "size": "10",
        "x": "",
    }


# ---------------------------------------------------------------------- types and limits


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ("cpu_cores = true", "cpu_cores", "must be an integer, not a boolean"),
        ('memory_gb = "8"', "memory_gb", "must be an integer, not a string"),
        ("memory_gb = 8.5", "memory_gb", "must be an integer, not a number"),
        ("cpu_cores = 0", "cpu_cores", "must be between 1 and 1024, not 0"),
        (
            "system_disk_gb = 2000000",
            "system_disk_gb",
            "must be between 1 and 1048576, not 2000000",
        ),
        ("count = 0", "count", "must be between 1 and 10000, not 0"),
        ("count = 10001", "count", "must be between 1 and 10000, not 10001"),
        ("start = -1", "start", "must be between 0 and 1000000000, not -1"),
        ('ssh_keys = "k"', "ssh_keys", "must be a list, not a string"),
        ('tags = ["a", 3]', "tags[1]", "must be a string, not an integer"),
        ('tags = [""]', "tags[0]", "must not be empty"),
        ('name = "bell\\u0007"', "name", "contains the control character U+0007 at position 4"),
        ('group = "a\\nb"', "group", "contains the control character U+000A at position 1"),
        (
            'description = "a\\u001bb"',
            "description",
            "contains the control character U+001B at position 1",
        ),
        (f'name = "{"n" * 256}"', "name", "is 256 characters long; at most 255 allowed"),
        ("annotations = []", "annotations", "must be a table, not a list"),
        (
            "disk_template_options = { x = 1.5 }",
            "disk_template_options",
            "value of 'x' must be a string, integer or boolean, not a number",
        ),
        (
            'disk_template_options = { "a b" = "x" }',
            "disk_template_options",
            "key 'a b' is not allowed: use letters, digits and _ . : / -, at most 128 characters",
        ),
        (
            'annotations = { k = "\\u0000" }',
            "annotations",
            "value of 'k' contains the control character U+0000 at position 0",
        ),
        ("tags = [" + ", ".join(['"t"'] * 101) + "]", "tags", "has too many items: at most 100"),
        (
            'ssh_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAKd me@laptop"]',
            "ssh_keys[0]",
            "is public-key text; ssh_keys name keys stored in the organization (by key_... id, "
            "name or fingerprint): add the key to the organization in Katapult first, "
            "then name it here",
        ),
        (
            f'ssh_keys = ["{"k" * 256}"]',
            "ssh_keys[0]",
            "is 256 characters long; at most 255 allowed",
        ),
        (
            "annotations = { " + ", ".join(f"k{i} = 1" for i in range(101)) + " }",
            "annotations",
            "has 101 keys; at most 100 allowed",
        ),
    ],
)
def test_type_and_limit_errors(line: str, field: str, message: str) -> None:
    """Wrong types, out-of-range numbers and unsafe strings are errors naming the field."""
    issue = one_issue(entry(f'hostname = "a"\n{line}'))
    assert (issue.field, issue.message, issue.hostname) == (field, message, "a")


def test_yaml_string_type_error_suggests_quoting() -> None:
    """In YAML, a number where a string belongs suggests quoting it."""
    text = YAML_DEFAULTS + "vms:\n  - hostname: 1234\n"
    issue = one_issue(text, "yaml")
    assert (issue.field, issue.message, issue.line) == (
        "hostname",
        "must be a string, not an integer (quote it in YAML)",
        3,
    )


@pytest.mark.parametrize(
    ("text", "fmt", "field", "message"),
    [
        (
            "version = 2\n" + entry('hostname = "a"'),
            "toml",
            "version",
            "unsupported version 2: this orchestrator reads version 1",
        ),
        (
            'version = "1"\n' + entry('hostname = "a"'),
            "toml",
            "version",
            "unsupported version '1': this orchestrator reads version 1",
        ),
        ("[1, 2]", "json", None, "the spec must be a table with a 'vms' list, not a list"),
        ("", "yaml", None, "the spec file is empty: it needs a 'vms' list"),
        (DEFAULTS, "toml", "vms", "the spec has no 'vms': list the VMs to build under 'vms'"),
        ('{"vms": {}}', "json", "vms", "'vms' must be a list, not a table"),
        ('{"vms": []}', "json", "vms", "'vms' is empty: add at least one VM"),
        (
            '{"defaults": [], "vms": [{"hostname": "a"}]}',
            "json",
            "defaults",
            "'defaults' must be a table, not a list",
        ),
    ],
)
def test_top_level_errors(text: str, fmt: str, field: str | None, message: str) -> None:
    """The top level needs a non-empty 'vms' list, an optional defaults table and version 1."""
    found = issues(text, fmt)  # type: ignore[arg-type]
    assert (found[0].field, found[0].message) == (field, message)


def test_entry_that_is_not_a_table() -> None:
    """A 'vms' item that is not a table is an error at that entry."""
    issue = one_issue('{"vms": ["web-01"]}', "json")
    assert (issue.entry, issue.message) == (0, "each VM must be a table, not a string")


def test_non_string_keys_are_errors() -> None:
    """A YAML key that is not a string is an error, not a crash."""
    text = YAML_DEFAULTS + "vms:\n  - {hostname: a, 5: x}\n"
    issue = one_issue(text, "yaml")
    assert (issue.entry, issue.message) == (0, "keys must be strings, not an integer")


# --------------------------------------------------------------------- hostnames


@pytest.mark.parametrize(
    ("hostname", "message"),
    [
        ("web_01", "hostname 'web_01' contains '_': only a-z, 0-9 and '-' are allowed"),
        ("-web", "hostname '-web' must not start or end with '-'"),
        ("web-", "hostname 'web-' must not start or end with '-'"),
        ("a" * 64, f"hostname '{'a' * 64}' is 64 characters long; hostnames are at most 63"),
        ("", "hostname '' is empty"),
        ("wéb", "hostname 'wéb' contains 'é': only a-z, 0-9 and '-' are allowed"),
        ("web.example", "hostname 'web.example' contains '.': only a-z, 0-9 and '-' are allowed"),
        ("a\\tb", "hostname 'a\\tb' contains U+0009: only a-z, 0-9 and '-' are allowed"),
    ],
)
def test_bad_hostnames(hostname: str, message: str) -> None:
    """Hostnames must be RFC 1123 labels of at most 63 characters."""
    issue = one_issue(entry(f'hostname = "{hostname}"'))
    assert (issue.field, issue.message, issue.line) == ("hostname", message, 7)


def test_upper_case_hostnames_are_lower_cased() -> None:
    """Upper case is accepted and lower-cased in both hostname and key."""
    (vm,) = parse(entry('hostname = "Web-01"')).vms
    assert (vm.key, vm.hostname) == ("web-01", "web-01")


def test_duplicate_hostnames_name_both_entries() -> None:
    """Hostnames equal after lower-casing are an error at the later entry naming the earlier."""
    text = DEFAULTS + '\n[[vms]]\nhostname = "db-01"\n\n[[vms]]\nhostname = "DB-01"\n'
    issue = one_issue(text)
    assert (issue.entry, issue.hostname, issue.field, issue.line, issue.message) == (
        1,
        "db-01",
        "hostname",
        10,
        "duplicate hostname 'db-01': vms[0] (line 6) has it too",
    )


def test_duplicates_after_expansion_are_counted_once_per_pair() -> None:
    """Overlapping templates give one issue per pair of entries, with how many clash."""
    text = (
        DEFAULTS
        + '[[vms]]\nhostname = "web-{index:02d}"\ncount = 5\n'
        + '[[vms]]\nhostname = "web-{index:02d}"\ncount = 3\nstart = 3\n'
    )
    issue = one_issue(text)
    assert (issue.entry, issue.message) == (
        1,
        "duplicate hostnames: 3 of them ('web-03', ...) are also in vms[0] (line 5)",
    )


def test_count_and_start_expand_indexes() -> None:
    """count VMs are made with index start .. start+count-1."""
    spec = parse(entry('hostname = "n{index}"\ncount = 3\nstart = 0'))
    assert [vm.hostname for vm in spec.vms] == ["n0", "n1", "n2"]
    assert {vm.entry_index for vm in spec.vms} == {0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'hostname = "web"\ncount = 3',
            "count is 3 but the hostname has no {index} field, so every VM would get the "
            "same hostname (write e.g. 'web-{index:02d}')",
        ),
        ('hostname = "web-{name}"', "hostname template uses field 'name'; only {index} is allowed"),
        ('hostname = "web-{}"', "hostname template uses field {}; only {index} is allowed"),
        ('hostname = "web-{0}"', "hostname template uses field '0'; only {index} is allowed"),
        (
            'hostname = "web-{index.real}"',
            "hostname template uses field 'index.real'; only {index} is allowed",
        ),
        (
            'hostname = "web-{index!r}"',
            "hostname template uses the conversion '!r'; only a format spec such as "
            "{index:02d} is allowed",
        ),
        ('hostname = "web-{index:{w}}"', "hostname template has a nested field in a format spec"),
        (
            'hostname = "web-{index:0100d}"',
            "hostname template format spec ':0100d' asks for 100 characters; hostnames are "
            "at most 63",
        ),
        (
            'hostname = "web-{index:s}"',
            "hostname template format spec ':s' is invalid: Unknown format code 's' for object "
            "of type 'int'",
        ),
        (
            'hostname = "web-{"',
            "hostname template is malformed: Single '{' encountered in format string",
        ),
        (
            'hostname = "web-{index:.2f}"',
            "the hostname template gives 'web-1.00' for index 1, which contains '.': only a-z, "
            "0-9 and '-' are allowed",
        ),
        (
            'hostname = "web-{index:060d}"\ncount = 2\nstart = 9',
            "the hostname template gives 'web-" + "0" * 59 + "9' for index 9, which is 64 "
            "characters long; hostnames are at most 63",
        ),
        (
            'hostname = "web-{index:c}"\nstart = 1000000000',
            "the hostname template fails for index 1000000000: %c arg not in range(0x110000)",
        ),
    ],
)
def test_template_errors(body: str, message: str) -> None:
    """Only {index} with an optional format spec is allowed; every expansion must be valid."""
    issue = one_issue(entry(body))
    assert (issue.field, issue.message, issue.entry) == ("hostname", message, 0)


def test_total_vms_are_capped() -> None:
    """A spec may not expand to more than MAX_TOTAL_VMS VMs."""
    body = "".join(f'[[vms]]\nhostname = "w{i}-{{index}}"\ncount = 10000\n' for i in range(11))
    issue = one_issue(DEFAULTS + body)
    assert (issue.field, issue.message) == (
        "vms",
        "the spec asks for 110000 VMs; one spec may hold at most 100000",
    )


# ------------------------------------------------------------------- many issues


def test_all_issues_are_reported_at_once_in_entry_order() -> None:
    """Every problem of the file is listed, ordered by entry then line."""
    text = """\
version = 2
[defaults]
organization = "acme"
pakage = "rock-1"

[[vms]]
hostname = "a_1"
cpu_cores = 0

[[vms]]
count = 2
"""
    found = [(i.entry, i.field, i.line) for i in issues(text)]
    assert found == [
        (None, "version", 1),
        (None, "defaults.pakage", 4),
        (0, "hostname", 7),  # a bad cpu_cores hides the hostname's problem no more
        (0, "cpu_cores", 8),
        (1, "hostname", 10),
    ]


def test_issue_list_is_capped() -> None:
    """More than MAX_ISSUES issues are cut, with a last line counting the rest."""
    body = "".join(f'[[vms]]\nhostname = "bad_{i}"\n' for i in range(MAX_ISSUES + 50))
    found = issues(DEFAULTS + body)
    assert len(found) == MAX_ISSUES + 1
    assert found[-1] == SpecIssue("spec.toml", "... and 50 more problems not listed")


def test_spec_error_text_locates_each_issue() -> None:
    """str(SpecError) shows file:line, entry, hostname and field of each issue."""
    from orchestrator.errors import SpecError

    with pytest.raises(SpecError) as info:
        parse(entry('hostname = "web-01"\npackage = 3'))
    assert str(info.value) == (
        "spec is invalid (1 problem):\n"
        "  - spec.toml:8 vms[0] (web-01) package: must be a string (permalink or 'vmpkg_' id) "
        "or a table with 'id' or 'permalink', not an integer"
    )


# ------------------------------------------------------------------- YAML specifics


def test_yaml_anchors_and_merge_keys() -> None:
    """YAML anchors, aliases and merge keys work as YAML users expect."""
    text = """\
common: &common
  organization: acme
  package: rock-1
vms:
  - <<: *common
    hostname: a
    zone: lon-zone-1
  - <<: *common
    hostname: b
    zone: ams-zone-1
"""
    found = issues(text, "yaml")
    assert [(i.field, i.message) for i in found] == [("common", "unknown key 'common'")]
    text = text.replace("common: &common", "defaults: &common")
    spec = parse(text, "yaml")
    assert [(vm.key, vm.package.value) for vm in spec.vms] == [("a", "rock-1"), ("b", "rock-1")]


@pytest.mark.parametrize(
    ("item", "field", "message"),
    [
        (
            "{hostname: a, name: 2024-01-02}",
            "name",
            "must be a string, not a date (quote it in YAML)",
        ),
        (
            "{hostname: a, annotations: {1: x}}",
            "annotations[1]",
            "keys must be strings, not an integer",
        ),
        ("null", None, "each VM must be a table, not null"),
    ],
)
def test_yaml_values_that_are_not_strings(item: str, field: str | None, message: str) -> None:
    """YAML's dates, numeric keys and nulls are reported in plain words."""
    issue = one_issue(YAML_DEFAULTS + f"vms:\n  - {item}\n", "yaml")
    assert (issue.field, issue.message) == (field, message)


def test_yaml_value_that_cannot_be_constructed() -> None:
    """A YAML scalar its constructor rejects (an impossible date) is one syntax issue."""
    issue = one_issue(YAML_DEFAULTS + "vms:\n  - {hostname: a, name: 2024-13-45}\n", "yaml")
    assert issue.message == "not valid YAML: a value cannot be read: month must be in 1..12"


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ('{"vms": [{"hostname": "a\\ud800"}]}', "json"),
        (DEFAULTS + '[[vms]]\nhostname = "a\ud800"\n', "toml"),
        ("vms:\n  - hostname: a\ud800\n", "yaml"),
    ],
)
def test_lone_surrogates_never_get_through(text: str, fmt: str) -> None:
    """Text with lone surrogates (which cannot be encoded) is always a SpecError."""
    found = issues(text, fmt)  # type: ignore[arg-type]
    assert found
