#!/usr/bin/env python3
"""The README's variable tables, written from each role's meta/argument_specs.yml.

    python scripts/docs.py          rewrite the tables in README.md (make docs)
    python scripts/docs.py --check  fail when README.md, the specs and the defaults
                                    disagree (make lint)

Each role's `main` entry point is the source: an option's `description` is its
Meaning, its `default` must equal the value in defaults/main.yml (a key of a list
entry: the value in the role's per-entry defaults, ITEM_DEFAULTS), and a README
region between these markers is what this script writes:

    <!-- BEGIN roles/nginx variables (make docs) -->
    <!-- END roles/nginx variables -->

How a default is shown: a description item starting with "Default:" gives the text
(for computed values, e.g. "2 × cores + 1"); "{{ name }}" shows as `name` (the
option follows that variable); anything else as its YAML value.
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ROLES = ["flaskapp", "nginx", "firewall", "postgresql"]
# List options whose entries take their missing keys from another variable.
ITEM_DEFAULTS = {"flaskapp_apps": "flaskapp_app_defaults", "nginx_vhosts": "nginx_vhost_defaults"}
DISPLAY = "Default:"
INHERITED = re.compile(r"^\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}$")


def load(path):
    with open(path, encoding="utf-8") as stream:
        return yaml.safe_load(stream) or {}


def spec_options(role):
    return load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


def description_items(spec):
    items = spec.get("description", [])
    return [items] if isinstance(items, str) else list(items)


def meaning(spec):
    text = " ".join(item for item in description_items(spec) if not item.startswith(DISPLAY))
    return " ".join(text.split()).replace("|", "\\|")


def shown_default(spec):
    for item in description_items(spec):
        if item.startswith(DISPLAY):
            return item[len(DISPLAY):].strip()
    if spec.get("required"):
        return "required"
    if "default" not in spec:
        return "—"
    value = spec["default"]
    if isinstance(value, str):
        inherited = INHERITED.match(value)
        return f"`{inherited.group(1)}`" if inherited else f"`{value}`" if value else '`""`'
    return f"`{json.dumps(value)}`".replace("|", "\\|")


def table(header, options):
    rows = [f"| {header} | Default | Meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | {shown_default(spec)} | {meaning(spec)} |" for name, spec in options.items()]
    return rows


def region(role):
    """The generated Markdown of one role: its variables, then the keys of each list
    option's entries."""
    options = spec_options(role)
    lines = table("Variable", options)
    for name, spec in options.items():
        if spec.get("options"):
            lines += ["", f"Keys of each `{name}` entry:", ""] + table("Key", spec["options"])
    return "\n".join(lines)


def markers(role):
    return (f"<!-- BEGIN roles/{role} variables (make docs) -->\n", f"\n<!-- END roles/{role} variables -->")


def written(readme):
    """README text with every role's region as this script writes it."""
    for role in ROLES:
        begin, end = markers(role)
        start, stop = readme.find(begin), readme.find(end)
        if start < 0 or stop < start:
            raise SystemExit(f"README.md: the markers of roles/{role} are missing: {begin.strip()} ... {end.strip()}")
        readme = readme[:start + len(begin)] + region(role) + readme[stop:]
    return readme


def disagreements(role):
    """Every way roles/<role>'s defaults and specs disagree, as messages."""
    problems = []
    defaults = load(ROOT / "roles" / role / "defaults" / "main.yml")
    options = spec_options(role)
    where = f"roles/{role}"
    for name in defaults.keys() - options.keys():
        problems.append(f"{where}: {name} is in defaults/main.yml but not in meta/argument_specs.yml")
    for name, spec in options.items():
        if not spec.get("description"):
            problems.append(f"{where}: {name} has no description in meta/argument_specs.yml")
        if name not in defaults:
            if not spec.get("required"):
                problems.append(f"{where}: {name} is in meta/argument_specs.yml but not in defaults/main.yml")
        elif name in ITEM_DEFAULTS.values():
            pass  # checked key by key below, with its list option
        elif "default" not in spec:
            problems.append(f"{where}: {name} has no default: in meta/argument_specs.yml "
                            f"(defaults/main.yml: {defaults[name]!r})")
        elif spec["default"] != defaults[name]:
            problems.append(f"{where}: {name} is {defaults[name]!r} in defaults/main.yml "
                            f"but {spec['default']!r} in meta/argument_specs.yml")
        if spec.get("options"):
            problems += item_disagreements(where, name, spec["options"], defaults.get(ITEM_DEFAULTS.get(name)))
    return problems


def item_disagreements(where, name, keys, item_defaults):
    problems = []
    source = ITEM_DEFAULTS.get(name, "")
    for key, spec in keys.items():
        label = f"{where}: {name} key {key}"
        if not spec.get("description"):
            problems.append(f"{label} has no description in meta/argument_specs.yml")
        if spec.get("required"):
            continue
        if item_defaults is None:
            if "default" in spec:
                problems.append(f"{label} has a default: but the role has no {source or 'per-entry defaults'}")
        elif key not in item_defaults:
            if "default" in spec:
                problems.append(f"{label} has a default: in meta/argument_specs.yml but is not in {source}")
            elif not any(item.startswith(DISPLAY) for item in description_items(spec)):
                problems.append(f"{label} is in neither {source} nor has a 'Default:' description item")
        elif "default" not in spec:
            problems.append(f"{label} has no default: in meta/argument_specs.yml ({source}: {item_defaults[key]!r})")
        elif spec["default"] != item_defaults[key]:
            problems.append(f"{label} is {item_defaults[key]!r} in {source} "
                            f"but {spec['default']!r} in meta/argument_specs.yml")
    for key in (item_defaults or {}).keys() - keys.keys():
        problems.append(f"{where}: {source} sets {key}, which is not a key of {name} in meta/argument_specs.yml")
    return problems


def main(argv):
    readme = README.read_text(encoding="utf-8")
    new = written(readme)
    if argv[1:] == ["--check"]:
        problems = [problem for role in ROLES for problem in disagreements(role)]
        if new != readme:
            problems.append("README.md: the variable tables are not what `make docs` writes from "
                            "the specs; run `make docs`")
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    if argv[1:]:
        raise SystemExit(__doc__)
    if new != readme:
        README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
