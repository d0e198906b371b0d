"""Read the launch files without importing ``launch`` (for the tests that run everywhere)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_SUPPORT = ROOT / 'triton_ros' / 'ros' / 'launch_support.py'
# launch_support's argument helpers and the argument each declares.
ARGUMENT_HELPERS = {'log_level_argument': 'log_level', 'namespace_argument': 'namespace',
                    'use_sim_time_argument': 'use_sim_time', 'autostart_argument': 'autostart'}


def calls(path, name):
    """The calls of function ``name`` in the file at ``path``."""
    tree = ast.parse(Path(path).read_text())
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == name]


def declared_arguments(path) -> dict:
    """{argument name: default (a constant, or None when computed)} declared by a launch file."""
    declared = {}
    for name in ('DeclareLaunchArgument', 'bool_argument'):
        for call in calls(path, name):
            default = call.args[1] if len(call.args) > 1 else next(
                (k.value for k in call.keywords if k.arg == 'default_value'), None)
            declared[call.args[0].value] = getattr(default, 'value', None)
    for helper, argument in ARGUMENT_HELPERS.items():
        if calls(path, helper):
            declared[argument] = ''
    return declared


def node_executables(path) -> set:
    """Executables of the ``ros_node(context, executable, ...)`` calls of a launch file."""
    return {call.args[1].value for call in calls(path, 'ros_node')
            if len(call.args) > 1 and isinstance(call.args[1], ast.Constant)}


def support_function(name, **namespace):
    """A function of launch_support.py compiled alone (``launch`` itself may be missing)."""
    tree = ast.parse(LAUNCH_SUPPORT.read_text())
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    exec(compile(ast.Module(body=[function], type_ignores=[]), str(LAUNCH_SUPPORT), 'exec'),
         namespace)
    return namespace[name]
