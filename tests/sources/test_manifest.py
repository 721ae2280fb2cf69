"""Snapshot manifest parsing."""

from __future__ import annotations

import json

import pytest

from ctguard.errors import ParseError
from ctguard.host.root import HostRoot
from ctguard.sources.manifest import MANIFEST, ManifestInfo, parse_manifest, read_manifest

SAMPLE = {
    "created_utc": "2024-11-25T11:44:02Z",
    "ctguard_version": "0.1.0",
    "hostname": "web1",
    "netns": "init",
    "redacted": False,
    "files": ["/proc/meminfo"],
}


def test_parse_manifest_fields():
    info = parse_manifest(json.dumps(SAMPLE))
    assert info == ManifestInfo("2024-11-25T11:44:02Z", "0.1.0", "web1", "init")


def test_non_string_and_missing_fields_are_none():
    info = parse_manifest('{"created_utc": 17, "hostname": null, "netns": ["a"]}')
    assert info == ManifestInfo(None, None, None, None)


@pytest.mark.parametrize("text", ["", "{", "{'hostname': 'x'}", "hostname=web1", "{} {}"])
def test_bad_json(text):
    with pytest.raises(ParseError, match="not JSON"):
        parse_manifest(text)


@pytest.mark.parametrize("text", ["[]", '["hostname"]', '"web1"', "17", "null", "true"])
def test_not_an_object(text):
    with pytest.raises(ParseError, match="not a JSON object"):
        parse_manifest(text)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000])
def test_deeply_nested_json_is_a_parse_error(text):
    # json raises RecursionError, not ValueError, for deep nesting.
    with pytest.raises(ParseError):
        parse_manifest(text)


def test_read_manifest(host, write):
    assert read_manifest(host) is None
    write(MANIFEST, json.dumps(SAMPLE))
    assert read_manifest(host) == ManifestInfo("2024-11-25T11:44:02Z", "0.1.0", "web1", "init")


def test_read_manifest_of_a_directory_named_like_it(host, tmp_path):
    (tmp_path / MANIFEST.lstrip("/")).mkdir()
    assert read_manifest(host) is None


def test_read_manifest_live_host_is_none():
    assert read_manifest(HostRoot("/")) is None


def test_read_manifest_bad_content_is_a_parse_error(host, write):
    write(MANIFEST, "not json")
    with pytest.raises(ParseError):
        read_manifest(host)
