"""The RDS options Strata runs, as data: MARIADB_AUDIT_PLUGIN on the mariadb and mysql engines (both
run by MariaDB, whose Debian package ships the plugin, `server_audit.so`).

AWS's settings of the option (RDS User Guide, "MariaDB Audit Plugin support") map one to one onto
the plugin's own variables; the plugin writes its log where RDS lists it, `audit/server_audit.log`
(rotated by size: `server_audit.log.1` ...). `SERVER_AUDIT_FILE_PATH` has one valid value, RDS's
directory, and is not passed on: the file stays in the instance's data directory. An option of
RDS's catalogue that is not here is refused: nothing would honour it.
"""

from __future__ import annotations

from dataclasses import dataclass

from strata.engines.mariadb import LOADABLE_PLUGINS
from strata.services.rds import model as m


@dataclass(frozen=True)
class Setting:
    name: str  # AWS's option setting name
    variable: str | None  # the engine's variable it sets (None: not passed on)
    default: str
    allowed: str  # AWS's AllowedValues text
    kind: str  # "integer" (range in `allowed`), "list" (comma-separated items of `allowed`), "users", "fixed"
    description: str


@dataclass(frozen=True)
class OptionSpec:
    name: str
    engines: tuple[str, ...]
    description: str
    plugin: str  # the shared object the engine loads
    settings: tuple[Setting, ...]


AUDIT_EVENTS = "CONNECT,QUERY,TABLE,QUERY_DDL,QUERY_DML,QUERY_DML_NO_SELECT,QUERY_DCL"
MARIADB_AUDIT_PLUGIN = OptionSpec(
    "MARIADB_AUDIT_PLUGIN",
    ("mariadb", "mysql"),
    "MariaDB Audit Plugin",
    "server_audit",
    (
        Setting(
            "SERVER_AUDIT_FILE_PATH",
            None,
            "/rdsdbdata/log/audit/",
            "/rdsdbdata/log/audit/",
            "fixed",
            "The location of the log file.",
        ),
        Setting(
            "SERVER_AUDIT_FILE_ROTATE_SIZE",
            "server_audit_file_rotate_size",
            "1000000",
            "1-1000000000",
            "integer",
            "The size in bytes that when reached, causes the file to rotate.",
        ),
        Setting(
            "SERVER_AUDIT_FILE_ROTATIONS",
            "server_audit_file_rotations",
            "9",
            "0-100",
            "integer",
            "The number of log rotations to save.",
        ),
        Setting(
            "SERVER_AUDIT_EVENTS",
            "server_audit_events",
            "CONNECT,QUERY",
            AUDIT_EVENTS,
            "list",
            "The types of activity to record in the log.",
        ),
        Setting(
            "SERVER_AUDIT_INCL_USERS",
            "server_audit_incl_users",
            "",
            "Multiple comma-separated values",
            "users",
            "Include only activity from the specified users.",
        ),
        Setting(
            "SERVER_AUDIT_EXCL_USERS",
            "server_audit_excl_users",
            "",
            "Multiple comma-separated values",
            "users",
            "Exclude activity from the specified users.",
        ),
        Setting("SERVER_AUDIT_LOGGING", "server_audit_logging", "ON", "ON", "fixed", "Logging is active."),
        Setting(
            "SERVER_AUDIT_QUERY_LOG_LIMIT",
            "server_audit_query_log_limit",
            "1024",
            "0-2147483647",
            "integer",
            "The maximum length of the query string in a record.",
        ),
    ),
)
OPTIONS = {MARIADB_AUDIT_PLUGIN.name: MARIADB_AUDIT_PLUGIN}
# A node's plugin directory offers only the libraries named in LOADABLE_PLUGINS.
assert all(o.plugin in LOADABLE_PLUGINS for o in OPTIONS.values())


def options_for(engine: str) -> list[OptionSpec]:
    return [o for o in OPTIONS.values() if engine in o.engines]


def _check_setting(s: Setting, value: str) -> str:
    bad = m.fault("InvalidParameterValue", f"Invalid value {value} for option setting {s.name}.")
    if s.kind == "fixed" and value != s.allowed:
        raise bad
    if s.kind == "integer":
        lo, hi = (int(x) for x in s.allowed.split("-"))
        if not (value.isascii() and value.isdigit() and lo <= int(value) <= hi):
            raise bad
    if s.kind == "list":
        items = [i.strip().upper() for i in value.split(",")]
        if not all(items) or not set(items) <= set(AUDIT_EVENTS.split(",")):
            raise bad
        value = ",".join(items)
    if s.kind == "users" and any(not u.strip() or "'" in u or "\\" in u for u in value.split(",")):
        raise bad
    return value


def configure(engine: str, major: str, conf: dict) -> dict:
    """The option as the group records it, from one OptionsToInclude entry (OptionConfiguration);
    AWS's errors for an option this engine cannot have, a port it has none of, a bad setting."""
    name = conf.get("OptionName") or ""
    spec = OPTIONS.get(name)
    if spec is None or engine not in spec.engines:
        raise m.fault(
            "InvalidParameterCombination", f"Option {name} is not valid for engine {engine} {major}."
        )
    if (
        conf.get("Port") is not None
        or conf.get("VpcSecurityGroupMemberships")
        or conf.get("DBSecurityGroupMemberships")
    ):
        raise m.fault(
            "InvalidParameterCombination", f"Option {name} does not take a port or security groups."
        )
    if conf.get("OptionVersion"):
        raise m.fault("InvalidParameterCombination", f"Option {name} has no versions.")
    known = {s.name: s for s in spec.settings}
    values = {s.name: s.default for s in spec.settings}
    for item in conf.get("OptionSettings") or []:
        setting = known.get(item.get("Name") or "")
        if setting is None:
            raise m.fault(
                "InvalidParameterValue", f"Option setting {item.get('Name')} is not valid for option {name}."
            )
        values[setting.name] = _check_setting(setting, str(item.get("Value") or ""))
    if values["SERVER_AUDIT_INCL_USERS"] and values["SERVER_AUDIT_EXCL_USERS"]:
        raise m.fault(
            "InvalidParameterCombination",
            "SERVER_AUDIT_INCL_USERS and SERVER_AUDIT_EXCL_USERS are mutually exclusive.",
        )
    return {"name": name, "settings": values}


def option_out(option: dict) -> dict:
    spec = OPTIONS[option["name"]]
    return {
        "OptionName": spec.name,
        "OptionDescription": spec.description,
        "Persistent": False,
        "Permanent": False,
        "OptionSettings": [
            {
                "Name": s.name,
                "Value": option["settings"].get(s.name, s.default),
                "DefaultValue": s.default,
                "Description": s.description,
                "ApplyType": "DYNAMIC",
                "DataType": "INTEGER" if s.kind == "integer" else "STRING",
                "AllowedValues": s.allowed,
                "IsModifiable": s.kind != "fixed",
                "IsCollection": s.kind in ("list", "users"),
            }
            for s in spec.settings
        ],
        "DBSecurityGroupMemberships": [],
        "VpcSecurityGroupMemberships": [],
    }


def option_group_option_out(spec: OptionSpec, engine: str, major: str) -> dict:
    """One entry of DescribeOptionGroupOptions."""
    return {
        "Name": spec.name,
        "Description": spec.description,
        "EngineName": engine,
        "MajorEngineVersion": major,
        "PortRequired": False,
        "OptionsDependedOn": [],
        "OptionsConflictsWith": [],
        "Persistent": False,
        "Permanent": False,
        "RequiresAutoMinorEngineVersionUpgrade": False,
        "VpcOnly": False,
        "SupportsOptionVersionDowngrade": False,
        "OptionGroupOptionSettings": [
            {
                "SettingName": s.name,
                "SettingDescription": s.description,
                "DefaultValue": s.default,
                "ApplyType": "DYNAMIC",
                "AllowedValues": s.allowed,
                "IsModifiable": s.kind != "fixed",
                "IsRequired": False,
            }
            for s in spec.settings
        ],
        "OptionGroupOptionVersions": [],
        "CopyableCrossAccount": True,
        "CopyableCrossRegion": True,
    }


def engine_params(options: list[dict]) -> dict[str, str]:
    """The engine configuration the options of an instance's group ask for: the plugin loaded, its
    variables set (see `MariaNode.reload`, which installs a plugin named here at once)."""
    params: dict[str, str] = {}
    plugins = []
    for option in options:
        spec = OPTIONS[option["name"]]
        plugins.append(f"{spec.plugin}.so")
        for s in spec.settings:
            if s.variable:
                params[s.variable] = option["settings"].get(s.name, s.default)
    if plugins:
        params["plugin_load_add"] = ",".join(plugins)
    return params


# A member of an instance record's `pending` (modify_instance.py): the options its engines run while
# a change of its option group made without ApplyImmediately waits for its maintenance window.
HELD_OPTIONS = "OptionGroupOptions"


def running_options(doc: dict, group: dict | None) -> list[dict]:
    """The options an instance's engines run: those held for its maintenance window, else its
    option group's (`group`, None for a default group)."""
    held = (doc.get("pending") or {}).get(HELD_OPTIONS)
    return held if held is not None else (group or {}).get("options", [])
