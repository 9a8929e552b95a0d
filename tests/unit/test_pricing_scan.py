"""The price map is scanned, not parsed, for models it does not mention (rlm_cli.lm.pricing._mentions)."""

from __future__ import annotations

from rlm_cli.lm import pricing


def test_a_name_across_a_read_boundary_is_found(tmp_path):
    path = tmp_path / "map.json"
    needle = '"openai/my-model"'
    head = b"x" * ((1 << 20) - 5)  # the needle starts 5 bytes before the first 1 MiB piece ends
    path.write_bytes(head + needle.encode() + b"y" * 100)
    assert pricing._mentions(str(path), [needle])
    assert not pricing._mentions(str(path), ['"openai/other"', '"other"'])


def test_an_unreadable_file_counts_as_a_mention(tmp_path):
    assert pricing._mentions(str(tmp_path / "missing.json"), ['"x"'])


def test_the_real_map_mentions_a_known_model_and_not_a_local_one():
    path = pricing._catalogue_path()
    assert path is not None
    assert pricing._mentions(path, ['"gpt-4o-mini"'])
    assert not pricing._mentions(path, ['"openai/my-local-qwen-7b"', '"my-local-qwen-7b"'])
