"""argspec_errors: check role variables against the role's meta/argument_specs.yml,
on the values the role will use.

Ansible's own check coerces before it compares (42 passes as the list ['42'], a list
as its string form) but the role then reads the raw value. This filter runs Ansible's
validator for required keys, choices and unknown keys, then checks every raw value's
type strictly, down through list elements and sub-options. It returns every problem
at once, each message starting with the variable's full name (flaskapp_apps[0].env),
and never shows a value: some are secrets.

    errors: "{{ spec_options | flaskvps.stack.argspec_errors(values) }}"

(By its full name: a role inside a collection finds no filter by its short name. From
this repository, collections/ansible_collections/flaskvps/stack links plugins/.)
"""

import re
from collections.abc import Mapping

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

# What each argument_specs type accepts as a raw value, and how messages name it.
KINDS = {
    "str": "a string",
    "path": "a path (a string)",
    "int": "a whole number",
    "bool": "true or false",
    "list": "a list",
    "dict": "a mapping (key: value)",
}


def _is(kind, value):
    if kind in ("str", "path"):
        # A number is a fine string (a version, a port); a boolean is a YAML accident
        # (`off`, `no`), so it is refused.
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if kind == "int":
        # -e name=8443 passes a string of digits; the role reads it with | int.
        if isinstance(value, str):
            return re.fullmatch(r"-?[0-9]+", value.strip()) is not None
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, (list, tuple))
    if kind == "dict":
        return isinstance(value, dict)
    return True  # raw, or a type this project does not use


def _got(value):
    for python_type, name in ((bool, "a boolean"), (int, "a number"), (float, "a number"),
                              (str, "a string"), (dict, "a mapping"), ((list, tuple), "a list")):
        if isinstance(value, python_type):
            return name
    return "nothing (null)" if value is None else type(value).__name__


def _check(name, spec, value, errors):
    kind = spec.get("type", "str")
    if not _is(kind, value):
        hint = f""" (with -e, pass JSON: -e '{{"{name}": false}}')""" if kind == "bool" and "." not in name else ""
        errors.append(f"{name}: must be {KINDS.get(kind, kind)}, got {_got(value)}{hint}.")
        return
    if kind == "list":
        elements = spec.get("elements")
        for index, element in enumerate(value):
            if elements and not _is(elements, element):
                errors.append(f"{name}[{index}]: must be {KINDS.get(elements, elements)}, got {_got(element)}.")
            elif elements == "dict" and spec.get("options"):
                _check_options(f"{name}[{index}].", spec["options"], element, errors)
    elif kind == "dict" and spec.get("options"):
        _check_options(f"{name}.", spec["options"], value, errors)


def _check_options(prefix, options, values, errors):
    for key, spec in options.items():
        if key in values:
            _check(prefix + key, spec, values[key], errors)


def _plain(value):
    """value as plain dicts and lists. Ansible 2.19 hands a filter its variables as lazy
    containers that template an item on every access; the checks below read each item
    several times, and on a cluster that took 2 to 10 s a check (30% of an idempotent
    run). Copied once, a check takes under 0.2 s."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def argspec_errors(options, values):
    """Every problem with values (name: value) against options (an entry point's
    options from meta/argument_specs.yml), as messages; [] when all is well."""
    options, values = _plain(options), _plain(values)
    errors = []
    _check_options("", options, values, errors)
    # Ansible's validator, on a copy, for required keys, choices and unknown keys. Its
    # type errors are left out: the strict check above refuses all of those and more.
    result = ArgumentSpecValidator(options).validate(dict(values), validate_role_argument_spec=True)
    for error in result.errors:
        if type(error).__name__ == "UnsupportedError":
            errors.append(f"unknown keys: {error}")
        elif not re.search(r"unable to convert| must be an? \w+, not '", str(error)):
            errors.append(str(error))
    return errors


class FilterModule:
    def filters(self):
        return {"argspec_errors": argspec_errors}
