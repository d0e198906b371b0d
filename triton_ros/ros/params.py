"""Declare a node's parameters once, from a table, with descriptors (description, range, choices).

Each :class:`ParamSpec` becomes one ``declare_parameter`` call with a ``ParameterDescriptor``;
:func:`declare_all` returns the values and raises :class:`ParameterError` naming every invalid one,
so a bad configuration fails at start with one clear message.
"""
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter


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

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(description=self.description, read_only=self.read_only)
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


def declare_all(node, specs: list[ParamSpec]) -> dict[str, Any]:
    """Declare ``specs`` on ``node``; return name -> value, or raise ParameterError."""
    values, problems = {}, []
    for spec in specs:
        try:
            param = node.declare_parameter(spec.name, spec.default, spec.descriptor())
        except Exception as exc:  # rclpy raises several types for out-of-range/wrong-type values
            problems.append(f"{spec.name}: {exc}")
            continue
        value = param.value
        if value is None and isinstance(spec.default, Parameter.Type):
            value = []
        values[spec.name] = value
        problem = spec.problem(value)
        if problem:
            problems.append(problem)
    if problems:
        raise ParameterError("invalid parameters: " + "; ".join(problems))
    return values
