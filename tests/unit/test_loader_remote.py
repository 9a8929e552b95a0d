"""Telling URLs from git remotes, their displayed names, redaction and the refusals (no network)."""

from __future__ import annotations

import pytest

from rlm_cli.errors import InputError, UsageError
from rlm_cli.loader.fetch import extension_for
from rlm_cli.loader.git_remote import cache_key, normalize
from rlm_cli.loader.remote import classify, env_number, looks_remote, redact


@pytest.mark.parametrize(("source", "kind", "url", "ref", "display"), [
    ("https://example.com/docs/page.html", "url", "https://example.com/docs/page.html", None,
     "https://example.com/docs/page.html"),
    ("https://example.com/a#section", "url", "https://example.com/a", None, "https://example.com/a"),
    ("https://github.com/org/repo", "git", "https://github.com/org/repo", None, "https://github.com/org/repo"),
    ("https://github.com/org/repo/", "git", "https://github.com/org/repo/", None, "https://github.com/org/repo"),
    ("https://github.com/org/repo/blob/main/x.py", "url", "https://github.com/org/repo/blob/main/x.py", None,
     "https://github.com/org/repo/blob/main/x.py"),
    ("https://codeberg.org/org/repo#v2", "git", "https://codeberg.org/org/repo", "v2",
     "https://codeberg.org/org/repo@v2"),
    ("https://git.example.com/team/proj.git#main", "git", "https://git.example.com/team/proj.git", "main",
     "https://git.example.com/team/proj@main"),
    ("git+https://example.com/team/proj", "git", "https://example.com/team/proj", None,
     "https://example.com/team/proj"),
    ("gh:org/repo", "git", "https://github.com/org/repo.git", None, "gh:org/repo"),
    ("gh:org/repo.git#feature/x", "git", "https://github.com/org/repo.git", "feature/x", "gh:org/repo@feature/x"),
    ("git@github.com:org/repo.git", "git", "git@github.com:org/repo.git", None, "git@github.com:org/repo"),
    ("ssh://git@host:2222/org/repo", "git", "ssh://git@host:2222/org/repo", None, "ssh://host:2222/org/repo"),
    ("file:///srv/git/proj.git#v1", "git", "file:///srv/git/proj.git", "v1", "file:///srv/git/proj@v1"),
    ("https://u:secret-pw@example.com/x.git", "git", "https://u:secret-pw@example.com/x.git", None,
     "https://example.com/x"),
])
def test_classify(source, kind, url, ref, display):
    spec = classify(source)
    assert spec is not None
    assert (spec.kind, spec.url, spec.ref, spec.display) == (kind, url, ref, display)


@pytest.mark.parametrize("source", ["src/", "notes.txt", "-", "./gh:org/repo", "http:/x", "github.com/org/repo"])
def test_local_paths_are_not_remote(source):
    assert not looks_remote(source) and classify(source) is None


@pytest.mark.parametrize(("source", "message"), [
    ("gh:org/repo#--upload-pack=x", "beginning with '-'"),
    ("gh:org/repo#-b", "beginning with '-'"),
    ("git+ssh://-oProxyCommand=x/y", "beginning with '-'"),
    ("ssh://-oProxyCommand=x/repo.git", "beginning with '-'"),
    ("gh:org/repo#a b", "spaces or control"),
    ("gh:org/repo#a..b", "not a valid git ref"),
    ("gh:org/repo#main:refs/heads/x", "not a valid git ref"),
    ("gh:org/repo#", "empty #REF"),
    ("gh:org", "not a GitHub shorthand"),
    ("https:///nohost", "no host"),
])
def test_refusals(source, message):
    with pytest.raises(InputError, match=message):
        classify(source)


def test_redact():
    assert redact("https://alice:pw@h.example/x?token=abc&api_key=k&page=2#f") == \
        "https://h.example/x?token=REDACTED&api_key=REDACTED&page=2#f"
    assert redact("not a url") == "not a url"


def test_cache_key_ignores_case_of_host_and_git_suffix():
    a, b = classify("https://GitHub.com/org/repo.git"), classify("https://github.com/org/repo/")
    assert normalize(a.url) == normalize(b.url) == "https://github.com/org/repo"
    assert cache_key(a) == cache_key(b) != cache_key(classify("https://github.com/org/repo#dev"))


def test_extension_from_content_type_then_url():
    assert extension_for("text/html", "https://x/a") == ".html"
    assert extension_for("application/pdf", "https://x/a") == ".pdf"
    assert extension_for("application/octet-stream", "https://x/report.PDF?x=1") == ".pdf"
    assert extension_for("text/plain", "https://x/a.py") == ".txt"
    assert extension_for("", "https://x/") == ""


def test_env_number(monkeypatch):
    monkeypatch.setenv("RLM_FETCH_TIMEOUT", "2.5")
    assert env_number("RLM_FETCH_TIMEOUT", 9) == 2.5
    monkeypatch.setenv("RLM_FETCH_MAX_BYTES", "2MiB")
    assert env_number("RLM_FETCH_MAX_BYTES", 1, integer=True) == 2 * 2**20
    for bad in ("0", "-1", "nan", "inf", "soon"):
        monkeypatch.setenv("RLM_FETCH_TIMEOUT", bad)
        with pytest.raises(UsageError, match="RLM_FETCH_TIMEOUT"):
            env_number("RLM_FETCH_TIMEOUT", 9)


def test_gzip_is_inflated_no_further_than_the_cap():
    import gzip

    from rlm_cli.loader.fetch import _Decoder

    bomb = gzip.compress(b"\0" * 20_000_000, compresslevel=9)
    out = _Decoder("gzip", "u").feed(bomb, 1000)
    assert len(out) == 1001  # one byte past the cap tells the caller to stop; no 20 MB in memory
    assert _Decoder("", "u").feed(b"abc", 1) == b"abc"
    with pytest.raises(InputError, match="unsupported Content-Encoding 'br'"):
        _Decoder("br", "u")
    with pytest.raises(InputError, match="corrupt compressed body"):
        _Decoder("gzip", "u").feed(b"not gzip at all", 100)
