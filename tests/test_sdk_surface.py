"""The canary for a new singer-sdk: every private SDK name this target uses, checked.

target_recotap/singer_adapter.py overrides or calls private parts of singer-sdk, which a new
release may rename or change without notice. ``SDK_SURFACE`` records each one as it was in the
release the pin was last moved to; these tests fail naming what changed and what to re-read.
To move the pin: change ``singer-sdk`` in pyproject.toml, `make setup`, then
`.venv/bin/python -m pytest tests/test_sdk_surface.py`.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from singer_sdk import Target
from singer_sdk.io_base import SingerReader
from singer_sdk.plugin_base import PluginBase, _ConfigInput

import target_recotap

RECORDED_AT = "0.54.9"
PACKAGE = Path(target_recotap.__file__).parent
ADAPTER = PACKAGE / "singer_adapter.py"

# (SDK class, name) -> its signature when recorded. What the adapter overrides must still be
# called by the SDK as before; what it calls must still do what its public name says.
SDK_SURFACE = {
    (Target, "_process_schema_message"): "(self, message_dict: 'dict') -> 'None'",
    (Target, "_process_record_message"): "(self, message_dict: 'dict') -> 'None'",
    (Target, "_process_state_message"): "(self, message_dict: 'dict') -> 'None'",
    (Target, "_process_activate_version_message"): "(self, message_dict: 'dict') -> 'None'",
    (Target, "_process_batch_message"): "(self, message_dict: 'dict') -> 'None'",
    (Target, "_handle_termination"): "(self, signum: 'int', frame: 'FrameType | None') -> 'None'",
    (Target, "_assert_line_requires"): (
        "(self, message_dict: 'dict', requires: 'set[str]') -> 'None'"
    ),
    (Target, "_assert_sink_exists"): "(self, stream_name: 'str') -> 'None'",
    (Target, "_handle_max_record_age"): "(self) -> 'None'",
    (Target, "_write_state_message"): "(self, state: 'dict') -> 'None'",
    (Target, "cb_config"): (
        "(ctx: 'click.Context', param: 'click.Option', value: 'tuple[str, ...]') -> '_ConfigInput'"
    ),
    (SingerReader, "_process_unknown_message"): "(self, message_dict: 'dict') -> 'None'",
}
# Instance attributes the adapter reads: (SDK class, name), each set in that class's __init__.
SDK_ATTRIBUTES = {(Target, "_sinks_active")}
# SDK methods the adapter holds a copy of, but for the lines it changes: the SHA-256 (first 16
# hex digits) of their source when the copy was made. A new hash means: compare the SDK's new
# version with the copy, carry over what changed, then record the new hash.
SDK_COPIES = {(Target, "invoke"): "09090ea685c4bda1"}
# The message types the SDK's reader dispatches to the overridden handlers.
DISPATCHED = [
    "_process_schema_message",
    "_process_record_message",
    "_process_state_message",
    "_process_activate_version_message",
    "_process_batch_message",
]

MOVE_THE_PIN = (
    f"singer-sdk {version('singer-sdk')} is installed; SDK_SURFACE in tests/test_sdk_surface.py "
    f"was recorded at {RECORDED_AT}. Read what changed in the SDK, adapt "
    "target_recotap/singer_adapter.py, then record the new value there"
)


def test_the_surface_was_recorded_at_the_installed_release():
    # Also when every check below passes: then moving the pin is only this line.
    assert version("singer-sdk") == RECORDED_AT, MOVE_THE_PIN


def where(owner: type, name: str) -> str:
    return f"{owner.__module__}.{owner.__qualname__}.{name}"


@pytest.mark.parametrize(("owner", "name"), SDK_SURFACE, ids=lambda v: getattr(v, "__name__", v))
def test_each_private_sdk_method_the_adapter_uses_is_as_recorded(owner, name):
    method = getattr(owner, name, None)
    assert method is not None, f"{where(owner, name)} is gone. {MOVE_THE_PIN}"
    signature = str(inspect.signature(method))
    assert signature == SDK_SURFACE[owner, name], (
        f"{where(owner, name)} is now {signature}, was {SDK_SURFACE[owner, name]}. {MOVE_THE_PIN}"
    )


def test_each_sdk_attribute_the_adapter_reads_is_still_set_by_the_sdk():
    for owner, name in SDK_ATTRIBUTES:
        assert re.search(rf"self\.{name}\b[^=\n]*=", inspect.getsource(owner.__init__)), (
            f"{where(owner, name)} is no longer set in its __init__. {MOVE_THE_PIN}"
        )
    assert {"config", "parse_env"} <= set(inspect.signature(_ConfigInput).parameters), (
        f"singer_sdk.plugin_base._ConfigInput changed. {MOVE_THE_PIN}"
    )


def test_each_sdk_method_copied_is_unchanged_since_the_copy():
    for (owner, name), recorded in SDK_COPIES.items():
        source = inspect.getsource(getattr(owner, name))
        digest = hashlib.sha256(source.encode()).hexdigest()[:16]
        assert digest == recorded, (
            f"{where(owner, name)} changed since singer_adapter.py copied it "
            f"(source hash {digest}, was {recorded}). {MOVE_THE_PIN}"
        )


def test_the_sdk_still_dispatches_each_message_type_to_the_overridden_handlers():
    dispatch = inspect.getsource(Target.process_lines)
    for name in DISPATCHED:
        assert f"self.{name}" in dispatch, (
            f"singer-sdk's Target.process_lines no longer calls {name}, which "
            f"singer_adapter.py overrides. {MOVE_THE_PIN}"
        )
    assert "self._handle_termination" in inspect.getsource(PluginBase), (
        f"singer-sdk no longer installs _handle_termination as its signal handler. {MOVE_THE_PIN}"
    )
    reading = inspect.getsource(SingerReader.process_lines)
    assert "self._process_unknown_message" in reading, (
        f"singer-sdk's SingerReader.process_lines no longer calls _process_unknown_message. "
        f"{MOVE_THE_PIN}"
    )


def private_names_used(source: str) -> set[str]:
    """Attributes like ``x._y`` (on anything: ``self``, ``super()``, a target), and names
    imported as ``_X`` from singer_sdk, in ``source``."""
    used = set(re.findall(r"\.(_[A-Za-z]\w*)", source))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
            used |= {alias.name for alias in node.names if alias.name.startswith("_")}
    return used


def private_sdk_modules_imported(source: str) -> set[str]:
    """singer_sdk modules with a private part (``singer_sdk.helpers._compat``) imported."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            modules.add(node.module or "")
        elif isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
    return {
        module
        for module in modules
        if module.startswith("singer_sdk") and any(p.startswith("_") for p in module.split("."))
    }


def private_names_defined(source: str) -> set[str]:
    tree = ast.parse(source)
    defined = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name.startswith("_")
    }
    defined |= set(re.findall(r"self\.(_[A-Za-z]\w*)\s*(?::[^=\n]+)?=", source))
    for node in ast.walk(tree):  # class attributes: ``_x = ...`` in a class body
        if isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.Assign):
                    targets = statement.targets
                elif isinstance(statement, ast.AnnAssign):
                    targets = [statement.target]
                else:
                    continue
                defined |= {
                    t.id for t in targets if isinstance(t, ast.Name) and t.id.startswith("_")
                }
    return defined - {"__init__"}


def sdk_names() -> set[str]:
    """Every private name the SDK's target, sink and reader classes have, and _ConfigInput."""
    from singer_sdk.sinks import BatchSink

    names = {"_ConfigInput"}
    for owner in (Target, BatchSink, SingerReader):
        names |= {name for name in dir(owner) if name.startswith("_") and not name.startswith("__")}
        for base in owner.__mro__:
            if base.__module__.startswith("singer_sdk"):
                source = inspect.getsource(base)
                names |= set(re.findall(r"self\.(_[A-Za-z]\w*)\s*(?::[^=\n]+)?=", source))
    return names


def test_only_the_adapter_touches_the_sdks_private_names_and_all_are_recorded():
    recorded = {name for _, name in [*SDK_SURFACE, *SDK_ATTRIBUTES, *SDK_COPIES]}
    recorded |= {"_ConfigInput"}
    ours = {path: path.read_text() for path in PACKAGE.rglob("*.py")}
    sdk = sdk_names()
    for path, text in ours.items():
        # A private SDK name used or overridden (a name of our own that the SDK also has is
        # counted: it overrides or shadows the SDK's), or a private SDK module imported.
        touched = (private_names_used(text) | private_names_defined(text)) & sdk
        touched |= private_sdk_modules_imported(text)
        if path == ADAPTER:
            assert touched <= recorded, (
                f"singer_adapter.py uses {sorted(touched - recorded)} of singer-sdk's private "
                "names without a record in SDK_SURFACE: add one"
            )
        else:
            assert not touched, (
                f"{path.relative_to(PACKAGE.parent)} uses singer-sdk's private "
                f"{sorted(touched)}: do it through target_recotap/singer_adapter.py"
            )
