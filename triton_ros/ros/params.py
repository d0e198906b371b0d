"""Declare a node's parameters once, from a table, with descriptors (description, range, choices).

Each :class:`ParamSpec` becomes one ``declare_parameter`` call with a ``ParameterDescriptor``;
:func:`declare_all` returns the values and raises :class:`ParameterError` naming every invalid one,
so a bad configuration fails at start with one clear message.

Array parameters without a default (a ``Parameter.Type`` as default) are declared with a
documented "unset" value (:data:`UNSET`: ``[""]``, ``[-1]``, ``[.nan]``), never without a value:
rclpy answers a GetParameters request that names an uninitialised parameter with an empty list,
so ``ros2 param dump`` would print ``{}``; and an empty YAML list has no ROS type, so ``[]``
could not be dumped and reloaded. :func:`declare_all` reports the unset value (or an empty
override, ``[]`` in a file) as ``[]``.
"""
import math
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter


UNSET = {Parameter.Type.STRING_ARRAY: [""], Parameter.Type.INTEGER_ARRAY: [-1],
         Parameter.Type.DOUBLE_ARRAY: [math.nan]}
UNSET_YAML = {Parameter.Type.STRING_ARRAY: "['']", Parameter.Type.INTEGER_ARRAY: "[-1]",
              Parameter.Type.DOUBLE_ARRAY: "[.nan]"}


def is_unset(value, ptype: Parameter.Type) -> bool:
    """True for None and for the "unset" value of an array parameter of type ``ptype``."""
    if value is None:
        return True
    value, (unset,) = list(value), UNSET[ptype]
    if len(value) != 1:
        return False
    if ptype == Parameter.Type.DOUBLE_ARRAY:
        return math.isnan(value[0])
    return value[0] == unset


#: lower-case spellings YAML (1.1, as rcl parses ``-p``) reads as booleans
_YAML_TRUE = ("on", "yes", "true")
_YAML_FALSE = ("off", "no", "false")


def typed_as_string(value, choices=()) -> str | None:
    """The string a user typed that YAML read as a bool/int/float (None for other values).

    bool: the first spelling of its kind in ``choices`` (False -> 'off' when 'off' is a choice),
    else 'true'/'false'; int/float: ``str(value)``.
    """
    if isinstance(value, bool):
        spellings = _YAML_TRUE if value else _YAML_FALSE
        return next((s for s in spellings if s in choices), spellings[-1])
    if isinstance(value, (int, float)):
        return str(value)
    return None


class ParameterError(ValueError):
    """One or more parameters have invalid values."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any                 # a value, or a Parameter.Type for "no default" (string arrays)
    description: str
    read_only: bool = True       # most settings are fixed for the node's life
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] = ()
    string_list: bool = False    # a string that may also be given as a list of strings

    def descriptor(self) -> ParameterDescriptor:
        description = self.description
        if isinstance(self.default, Parameter.Type):
            description += f" (unset: {UNSET_YAML[self.default]})"
        desc = ParameterDescriptor(description=description, read_only=self.read_only,
                                   dynamic_typing=self.string_list)
        if self.choices:
            desc.additional_constraints = "one of: " + ", ".join(self.choices)
        if self.min_value is not None and self.max_value is not None:
            if isinstance(self.default, int) and not isinstance(self.default, bool):
                desc.integer_range = [IntegerRange(from_value=int(self.min_value),
                                                   to_value=int(self.max_value), step=0)]
            else:
                desc.floating_point_range = [FloatingPointRange(
                    from_value=float(self.min_value), to_value=float(self.max_value), step=0.0)]
        return desc

    def problem(self, value) -> str | None:
        if self.choices and value not in self.choices:
            return f"{self.name}={value!r} is not one of {list(self.choices)}"
        if self.min_value is not None and value is not None and value < self.min_value:
            return f"{self.name}={value!r} is below {self.min_value}"
        if self.max_value is not None and value is not None and value > self.max_value:
            return f"{self.name}={value!r} is above {self.max_value}"
        return None


def _string_override(node, spec: ParamSpec) -> None:
    """Rewrite a bool/int/float override of a string parameter as the string typed (module doc).

    rclpy has no public API to change an override before declaration, and a read-only parameter
    cannot be set after it; ``_parameter_overrides`` is what ``declare_parameter`` itself reads.
    """
    overrides = getattr(node, "_parameter_overrides", None)
    override = overrides.get(spec.name) if overrides is not None else None
    if override is None:
        return
    text = typed_as_string(override.value, spec.choices)
    if text is not None:
        overrides[spec.name] = Parameter(spec.name, Parameter.Type.STRING, text)


def declare_all(node, specs: list[ParamSpec]) -> dict[str, Any]:
    """Declare ``specs`` on ``node``; return name -> value, or raise ParameterError."""
    values, problems = {}, []
    for spec in specs:
        default, ignore_override = spec.default, False
        if isinstance(default, str):
            _string_override(node, spec)
        if isinstance(default, Parameter.Type):
            default = UNSET[default]
            # An empty list in a file arrives as a NOT_SET override, which would leave the
            # parameter without a value: declare the unset value instead. (No public rclpy API
            # lists overrides; _parameter_overrides is what declare_parameter itself reads.)
            override = getattr(node, "_parameter_overrides", {}).get(spec.name)
            ignore_override = (override is not None
                               and override.type_ == Parameter.Type.NOT_SET)
        try:
            param = node.declare_parameter(spec.name, default, spec.descriptor(),
                                           ignore_override=ignore_override)
        except Exception as exc:  # rclpy raises several types for out-of-range/wrong-type values
            problems.append(f"{spec.name}: {exc}")
            continue
        value = param.value
        if isinstance(spec.default, Parameter.Type) and is_unset(value, spec.default):
            value = []
        if spec.string_list:  # [a, b] (a YAML list) reads as "a,b"
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                value = ",".join(value)
            if not isinstance(value, str):
                problems.append(f"{spec.name}={value!r}: expected a string or a list of strings")
                continue
        values[spec.name] = value
        problem = spec.problem(value)
        if problem:
            problems.append(problem)
    if problems:
        raise ParameterError("invalid parameters: " + "; ".join(problems))
    return values
