"""Node parameters a model carries in its config.pbtxt (no ROS here).

A model's ``parameters`` entries whose key starts with ``triton_ros.`` name node parameters, with
string values (Triton parameters are strings)::

    parameters { key: "triton_ros.decoder" value: { string_value: "tfod" } }

Precedence: a parameter the user gave explicitly (command line, params file, launch) > the
model's ``triton_ros.*`` value > the node's default.
"""
from triton_ros.model_spec import ModelSpecError

PREFIX = "triton_ros."
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def parse_bool(text: str) -> bool:
    """true/1/yes/on -> True, false/0/no/off -> False (any case); ValueError otherwise."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false/1/0/yes/no/on/off)")


def convert_like(text: str, example):
    """``text`` converted to the type of ``example``: bool (see :func:`parse_bool`), int,
    float, str, or a list of those (comma-separated). ValueError when it does not convert."""
    if isinstance(example, bool):  # before int: bool is an int subclass
        return parse_bool(text)
    if isinstance(example, int):
        return int(text.strip())
    if isinstance(example, float):
        return float(text.strip())
    if isinstance(example, (list, tuple)):
        element = example[0] if len(example) else ""
        items = [convert_like(part, element) for part in text.split(",") if part.strip()]
        return type(example)(items)
    return text


def merge_model_parameters(values: dict, explicit: set[str], model_params: dict[str, str],
                           model: str = "") -> tuple[dict, dict]:
    """Apply a model's ``triton_ros.<name>`` parameters to ``values`` (name -> current value).

    ``triton_ros.<name>`` sets ``values[name]`` only when ``name not in explicit``; its string is
    converted to the type of ``values[name]`` (see :func:`convert_like`). Returns (a new values
    dict, {name: value taken from the model}). Other keys of ``model_params`` are ignored.
    Raises :class:`ModelSpecError` naming the model and key for a name ``values`` lacks or a
    value that does not convert (also when the name is explicit: the model config is wrong).
    """
    merged, taken = dict(values), {}
    for key, text in model_params.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        if name not in values:
            raise ModelSpecError(f"model {model!r}: config parameter {key!r} names no node "
                                 f"parameter {name!r}; known: {sorted(values)}")
        try:
            value = convert_like(text, values[name])
        except ValueError as exc:
            raise ModelSpecError(f"model {model!r}: config parameter {key!r} = {text!r} does not "
                                 f"fit {name!r} ({type(values[name]).__name__}): {exc}") from None
        if name not in explicit:
            merged[name] = taken[name] = value
    return merged, taken
