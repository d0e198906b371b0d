"""triton_ros.credentials: tokens from env/file, never shown."""
import logging
import os

import pytest

from triton_ros.credentials import SecretHeaders, auth_headers, read_token


def test_token_from_environment(monkeypatch):
    monkeypatch.setenv("TRITON_ROS_TEST_TOKEN", " s3cret-token\n")
    headers = auth_headers(token_env="TRITON_ROS_TEST_TOKEN")
    assert headers == {"authorization": "Bearer s3cret-token"}
    assert "s3cret" not in repr(headers) and "s3cret" not in str(headers)
    assert "authorization" in repr(headers)


def test_token_from_file_without_scheme(tmp_path):
    path = tmp_path / "token"
    path.write_text("abc123\n")
    os.chmod(path, 0o600)
    assert auth_headers(token_file=str(path), header="Infer-Key", scheme="") == \
        {"infer-key": "abc123"}


def test_world_readable_token_file_is_warned_about(tmp_path, caplog):
    path = tmp_path / "token"
    path.write_text("abc123")
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="triton_ros.credentials"):
        assert read_token(token_file=str(path)) == "abc123"
    assert "chmod 600" in caplog.text and "abc123" not in caplog.text


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one"),
    ({"token_env": "A", "token_file": "/x"}, "exactly one"),
    ({"token_env": "TRITON_ROS_TEST_UNSET_VAR"}, "TRITON_ROS_TEST_UNSET_VAR"),
    ({"token_file": "/nonexistent/token"}, "/nonexistent/token"),
])
def test_missing_sources_name_the_source(kwargs, message, monkeypatch):
    monkeypatch.delenv("TRITON_ROS_TEST_UNSET_VAR", raising=False)
    with pytest.raises(ValueError, match=message):
        read_token(**kwargs)


def test_empty_file_and_bad_header_name(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_token(token_file=str(empty))
    monkeypatch.setenv("TRITON_ROS_TEST_TOKEN", "x")
    with pytest.raises(ValueError, match="header name"):
        auth_headers(token_env="TRITON_ROS_TEST_TOKEN", header="bad name")


def test_secret_headers_is_a_plain_dict_for_clients():
    headers = SecretHeaders({"a": "1"})
    assert dict(headers) == {"a": "1"} and list(headers.items()) == [("a", "1")]
