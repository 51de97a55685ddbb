"""Loading validates everything up front and names the item and field or file at fault."""

import json

import pytest

from siuo_task import data
from siuo_task.cli import main as siuo_main


def _rewrite(path, mutate):
    items = json.loads(path.read_text())
    mutate(items)
    path.write_text(json.dumps(items))


def test_loads_and_summarises(data_dir, clean_env, capsys):
    items, source = data.load_items("gen", data_dir)
    assert len(items) == data.N_ITEMS and source.origin == "argument" and source.revision is None
    assert all(item["image_path"].startswith(str(data_dir)) for item in items)
    assert {item["category"] for item in items} == set(data.CATEGORIES)
    assert siuo_main(["data", "check", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "SIUO data OK" in out and "items: gen 167, mcqa 167" in out and "privacy violation" in out


def test_env_var_selects_local_copy(data_dir, clean_env):
    clean_env.setenv("SIUO_DATA_DIR", str(data_dir))
    items, source = data.load_items("mcqa")
    assert source.origin == "SIUO_DATA_DIR" and source.data_dir == data_dir.resolve() and len(items) == 167


def test_missing_image(fresh_data_dir, clean_env):
    (fresh_data_dir / "images" / "S-01.png").unlink()
    with pytest.raises(data.SIUODataError, match=r"question_id=1001: image file not found: .*S-01.png"):
        data.load_items("gen", fresh_data_dir)


def test_corrupt_image(fresh_data_dir, clean_env):
    (fresh_data_dir / "images" / "S-02.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(data.SIUODataError, match=r"question_id=1002: image .*S-02.png cannot be decoded"):
        data.load_items("mcqa", fresh_data_dir)


def test_duplicate_id(fresh_data_dir, clean_env):
    _rewrite(fresh_data_dir / "siuo_gen.json", lambda items: items[5].update(question_id=items[4]["question_id"]))
    with pytest.raises(data.SIUODataError, match=r"question_id=1005: duplicate question_id \(also item #4\)"):
        data.load_items("gen", fresh_data_dir)


@pytest.mark.parametrize("field", ["safety_warning", "reference_answer", "question", "image", "category"])
def test_missing_field(fresh_data_dir, clean_env, field):
    _rewrite(fresh_data_dir / "siuo_gen.json", lambda items: items[10].pop(field))
    qid = json.loads((fresh_data_dir / "siuo_mcqa.json").read_text())[10]["question_id"]
    with pytest.raises(data.SIUODataError, match=rf"question_id={qid}: missing field '{field}'"):
        data.load_items("gen", fresh_data_dir)


def test_bad_mcqa_fields(fresh_data_dir, clean_env):
    _rewrite(fresh_data_dir / "siuo_mcqa.json", lambda items: items[0].update(correct_option="E"))
    with pytest.raises(data.SIUODataError, match=r"question_id=1001: field 'correct_option' is 'E'"):
        data.load_items("mcqa", fresh_data_dir)
    _rewrite(fresh_data_dir / "siuo_mcqa.json", lambda items: (items[0].update(correct_option="A"), items[1]["options"].pop("D")))
    with pytest.raises(data.SIUODataError, match=r"question_id=1002: field 'options' must have exactly the keys A, B, C, D"):
        data.load_items("mcqa", fresh_data_dir)


def test_wrong_count_and_category(fresh_data_dir, clean_env):
    _rewrite(fresh_data_dir / "siuo_gen.json", lambda items: items[3].update(category="weather"))
    with pytest.raises(data.SIUODataError, match=r"question_id=1004: unknown category 'weather'"):
        data.load_items("gen", fresh_data_dir)
    _rewrite(fresh_data_dir / "siuo_gen.json", lambda items: (items[3].update(category="self-harm"), items.pop()))
    with pytest.raises(data.SIUODataError, match=r"expected 167 items, found 166"):
        data.load_items("gen", fresh_data_dir)


def test_missing_files_and_dirs(tmp_path, clean_env, capsys):
    with pytest.raises(data.SIUODataError, match="data directory not found"):
        data.load_items("gen", tmp_path / "nope")
    with pytest.raises(data.SIUODataError, match="missing data file: .*siuo_gen.json"):
        data.load_items("gen", tmp_path)
    assert siuo_main(["data", "check", str(tmp_path)]) == 2
    assert "missing data file" in capsys.readouterr().err


def test_hub_is_the_default_and_fails_clearly_offline(clean_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = {}

    def fake_snapshot_download(**kwargs):
        calls.update(kwargs)
        raise OSError("offline and not cached")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    with pytest.raises(data.SIUODataError, match=r"sinwang/SIUO at revision 024e80a0.*SIUO_DATA_DIR"):
        data.load_items("gen")
    assert calls["repo_id"] == "sinwang/SIUO" and calls["revision"] == data.HF_REVISION and calls["repo_type"] == "dataset"


def test_hub_snapshot_is_used(data_dir, clean_env, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kwargs: str(data_dir))
    items, source = data.load_items("mcqa")
    assert source.origin == "huggingface" and source.revision == data.HF_REVISION and len(items) == 167


def test_import_does_no_work():
    import subprocess
    import sys

    code = "import sys, siuo_task, siuo_task.data, siuo_task.scoring, siuo_task.cli; print(sorted(m for m in ('torch','datasets','huggingface_hub','httpx','PIL','lmms_eval') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_png_is_caught_without_a_full_decode(fresh_data_dir, clean_env, damage):
    path = fresh_data_dir / "images" / "S-03.png"
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        idat = raw.index(b"IDAT")
        raw[idat + 8] ^= 0xFF  # one byte of pixel data: the chunk's CRC no longer matches
    path.write_bytes(bytes(raw))
    with pytest.raises(data.SIUODataError, match=r"question_id=1003: image .*S-03.png cannot be decoded"):
        data.load_items("gen", fresh_data_dir)
