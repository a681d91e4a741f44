"""`spac shards verify|manifest`: exit codes and messages on a small synthetic corpus."""

import os

import pytest

from common.cli import run_main
from shards import verify_corpus
from spac.cli.verify_shards import cli_main
from tests.shards.corpus_factory import write_corpus


@pytest.fixture
def corpus(tmp_path):
    write_corpus(str(tmp_path), shards=3, per_shard=4)
    return tmp_path


def test_verify_and_manifest_exit_codes_and_messages(corpus, tmp_path_factory, capsys):
    assert run_main("spac shards", cli_main, ["verify", str(corpus)]) == 0
    assert capsys.readouterr().out.strip() == "ok: 3 shards, 12 samples"

    os.remove(corpus / "synthpedes-000000.tar")  # a problem verify reports (its byte-level checks: tests/shards)
    assert run_main("spac shards", cli_main, ["verify", str(corpus)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("FAILED: ") and out[0].startswith("synthpedes-000000.tar: ")

    missing = tmp_path_factory.mktemp("empty") / "nothing"
    assert run_main("spac shards", cli_main, ["verify", "--quiet", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"spac shards: error: {missing}: no such corpus folder"
    assert run_main("spac shards", cli_main, ["manifest", str(missing.parent)]) == 2
    assert "no complete synthpedes-*.tar shards" in capsys.readouterr().err


def test_manifest_rewrites_the_manifest(corpus, capsys):
    os.remove(corpus / "manifest.json")
    assert run_main("spac shards", cli_main, ["manifest", str(corpus)]) == 0
    assert capsys.readouterr().out.strip() == "manifest.json: 3 shards, 12 samples, 4 identities"
    assert verify_corpus(str(corpus)) == []
