"""The one server-venv lookup every tool uses: explicit path, TRITON_ROS_SERVER_VENV, the record
bootstrap.sh writes, the checkout; one error line naming each place. Directories laid out like a
venv with nvidia-pytriton (only the package directory matters to the lookup)."""
import pytest

from triton_ros.tools import server_venv as sv


def fake_venv(path):
    (path / "lib" / "python3.11" / "site-packages" / "pytriton").mkdir(parents=True)
    return path


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.delenv(sv.SERVER_VENV_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(sv, "_checkout_venv", lambda: tmp_path / "checkout" / ".venv-server")
    return monkeypatch


def test_order_explicit_then_variable_then_record_then_checkout(env, tmp_path):
    checkout = fake_venv(tmp_path / "checkout" / ".venv-server")
    assert sv.find_server_venv() == checkout
    recorded = fake_venv(tmp_path / "recorded")
    assert sv.record_server_venv(recorded) == tmp_path / "config" / "triton_ros" / "server_venv"
    assert sv.find_server_venv() == recorded
    variable = fake_venv(tmp_path / "variable")
    env.setenv(sv.SERVER_VENV_ENV, str(variable))
    assert sv.find_server_venv() == variable
    explicit = fake_venv(tmp_path / "explicit")
    assert sv.find_server_venv(explicit) == explicit


def test_a_stale_record_falls_through_to_the_checkout(env, tmp_path):
    checkout = fake_venv(tmp_path / "checkout" / ".venv-server")
    record = sv.record_path()
    record.parent.mkdir(parents=True)
    record.write_text(str(tmp_path / "deleted_venv") + "\n")
    assert sv.find_server_venv() == checkout


def test_a_wrong_variable_is_not_passed_over(env, tmp_path):
    fake_venv(tmp_path / "checkout" / ".venv-server")
    env.setenv(sv.SERVER_VENV_ENV, str(tmp_path / "typo"))
    with pytest.raises(sv.ServerVenvNotFound, match="typo has no nvidia-pytriton"):
        sv.find_server_venv()


def test_nothing_found_is_one_line_naming_every_place(env, tmp_path):
    with pytest.raises(sv.ServerVenvNotFound) as err:
        sv.find_server_venv()
    text = str(err.value)
    assert "\n" not in text
    for part in ("--server-venv: not given", "$TRITON_ROS_SERVER_VENV: not set",
                 f"record {tmp_path / 'config' / 'triton_ros' / 'server_venv'}: none",
                 f"checkout: {tmp_path / 'checkout' / '.venv-server'} has no nvidia-pytriton",
                 "scripts/bootstrap.sh", "TRITON_ROS_SERVER_VENV"):
        assert part in text, text


def test_recording_a_venv_without_pytriton_is_refused(env, tmp_path):
    with pytest.raises(sv.ServerVenvNotFound):
        sv.record_server_venv(tmp_path)
    assert not sv.record_path().exists()
