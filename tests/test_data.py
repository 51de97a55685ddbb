"""Loading validates everything up front and names the item and field or file at fault."""

import json

import pytest

from siuo_task.cli import main as siuo_main
from siuo_task.core import data


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
    assert calls == {
        "repo_id": "sinwang/SIUO",
        "repo_type": "dataset",
        "revision": "024e80a01795376b9fed12f8073a12f2275f22ee",
        "allow_patterns": ["siuo_gen.json", "siuo_mcqa.json", "images/*"],
    }
    with pytest.raises(data.SIUODataError, match=r": OSError: offline and not cached\. Check the network"):
        data.load_items("gen")


def test_hub_without_huggingface_hub(clean_env, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    with pytest.raises(data.SIUODataError, match=r"^huggingface_hub is needed to download SIUO; install it or set SIUO_DATA_DIR$"):
        data.load_items("gen")


def test_cached_hub_snapshot_never_downloads(tmp_path, clean_env, monkeypatch):
    """The verifier's look-up of the pinned revision asks the local Hugging Face cache only, and says
    None when it is not there (or huggingface_hub is not installed)."""
    import sys

    import huggingface_hub

    calls = []

    def fake_snapshot_download(**kwargs):
        calls.append(kwargs)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    found = data.cached_hub_snapshot()
    assert isinstance(found, type(tmp_path)) and found == tmp_path
    assert calls == [
        {
            "repo_id": "sinwang/SIUO",
            "repo_type": "dataset",
            "revision": "024e80a01795376b9fed12f8073a12f2275f22ee",
            "local_files_only": True,
            "allow_patterns": ["siuo_gen.json", "siuo_mcqa.json", "images/*"],
        }
    ]

    def not_cached(**kwargs):
        raise OSError("not in the local cache")  # huggingface_hub.errors.LocalEntryNotFoundError is one

    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_cached)
    assert data.cached_hub_snapshot() is None
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes the import fail
    assert data.cached_hub_snapshot() is None


def test_hub_snapshot_is_used(data_dir, clean_env, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kwargs: str(data_dir))
    items, source = data.load_items("mcqa")
    assert source.origin == "huggingface" and source.revision == data.HF_REVISION and len(items) == 167


def test_import_does_no_work():
    import subprocess
    import sys

    code = "import sys, siuo_task, siuo_task.core.data, siuo_task.core.scoring, siuo_task.cli; print(sorted(m for m in ('torch','datasets','huggingface_hub','httpx','PIL','lmms_eval') if m in sys.modules))"
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


# ------------------------------------------------- synthetic releases (no SIUO data needed)


def synthetic_items(setting):
    """167 hand-made items: question_id i+1, category CATEGORIES[i % 9], image "<i % 5>.png",
    correct option "ABCD"[i % 4]. So categories 1-5 hold 19 items and 6-9 hold 18 (167 = 9 * 18 + 5),
    the answer key has 42 A, 42 B, 42 C and 41 D (167 = 4 * 41 + 3), and there are 5 images."""
    items = []
    for i in range(data.N_ITEMS):
        item = {"question_id": i + 1, "image": f"{i % 5}.png", "question": f"question {i}", "category": data.CATEGORIES[i % 9]}
        if setting == "gen":
            item.update(safety_warning=f"warning {i}", reference_answer=f"reference {i}")
        else:
            item.update(options={"A": "a", "B": "b", "C": "c", "D": "d"}, correct_option="ABCD"[i % 4])
        items.append(item)
    return items


def write_synthetic(root, images=True):
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    for setting in data.SETTINGS:
        (root / data.FILES[setting]).write_text(json.dumps(synthetic_items(setting)))
    if images:
        (root / "images").mkdir(exist_ok=True)
        for n in range(5):
            Image.new("RGB", (4, 3), (n, n, n)).save(root / "images" / f"{n}.png")
    return root


def test_synthetic_release_summary(tmp_path, clean_env):
    root = write_synthetic(tmp_path / "d")
    summary = data.check_data_dir(root)
    assert summary == {
        "source": {"origin": "argument", "data_dir": str(root.resolve()), "hf_repo": None, "hf_revision": None},
        "items": {"gen": 167, "mcqa": 167},
        "images": 5,
        "categories": {cat: (19 if k < 5 else 18) for k, cat in enumerate(data.CATEGORIES)},
        "mcqa_correct_option": {"A": 42, "B": 42, "C": 42, "D": 41},
    }
    items, source = data.load_items("gen", root)
    assert items[7]["image_path"] == str(root.resolve() / "images" / "2.png")
    assert source == data.DataSource(root.resolve(), "argument", None)


def test_load_items_returns_copies_and_sees_file_changes(tmp_path, clean_env):
    root = write_synthetic(tmp_path / "d")
    first, _ = data.load_items("mcqa", root, check_images=False)
    first[0]["question"] = "changed by the caller"
    again, _ = data.load_items("mcqa", root, check_images=False)
    assert again[0]["question"] == "question 0"  # the memoised items are not shared with callers
    items = synthetic_items("mcqa")
    items[0]["question"] = "a new version of the file"
    (root / "siuo_mcqa.json").write_text(json.dumps(items) + "\n")  # other size: a new stamp
    fresh, _ = data.load_items("mcqa", root, check_images=False)
    assert fresh[0]["question"] == "a new version of the file"
    with pytest.raises(ValueError, match=r"unknown SIUO setting 'both'; expected one of \('gen', 'mcqa'\)"):
        data.load_items("both", root)


def test_one_validation_per_file_version(tmp_path, clean_env, monkeypatch):
    """The harness's several hooks share one validation pass: a second load of the same file version
    reads nothing (the memo is keyed by file, image options and the file's mtime and size)."""
    root = write_synthetic(tmp_path / "d")
    first, _ = data.load_items("gen", root)

    def must_not_run(*args, **kwargs):
        raise AssertionError("read or checked again")

    monkeypatch.setattr(data, "_read_json", must_not_run)
    monkeypatch.setattr(data, "_check_image", must_not_run)
    again, _ = data.load_items("gen", root)
    assert again == first
    with pytest.raises(AssertionError, match="read or checked again"):
        data.load_items("gen", root, decode_images=True)  # other options: another entry


def test_memo_is_per_file(tmp_path, clean_env):
    """Two copies with the same size and modification time but other content are two entries."""
    import os

    first, second = write_synthetic(tmp_path / "one", images=False), write_synthetic(tmp_path / "two", images=False)
    items = synthetic_items("gen")
    items[0]["question"] = "QUESTION 0"  # same length as "question 0"
    (second / "siuo_gen.json").write_text(json.dumps(items))
    stamp = (first / "siuo_gen.json").stat().st_mtime_ns
    os.utime(second / "siuo_gen.json", ns=(stamp, stamp))
    assert (first / "siuo_gen.json").stat().st_size == (second / "siuo_gen.json").stat().st_size
    assert data.load_items("gen", first, check_images=False)[0][0]["question"] == "question 0"
    loaded = data.load_items("gen", second, check_images=False)[0][0]
    assert loaded["question"] == "QUESTION 0" and loaded["image_path"].startswith(str(second.resolve()))


def test_check_data_dir_checks_each_image_once(tmp_path, clean_env, monkeypatch):
    root = write_synthetic(tmp_path / "d")
    calls = []
    real = data._check_image
    monkeypatch.setattr(data, "_check_image", lambda path, where, decode=False: (calls.append(decode), real(path, where, decode)))
    data.check_data_dir(root)
    assert calls == [True] * 167  # the gen items, decoded; the MCQA items share their images


def test_errors_name_the_file(tmp_path, clean_env):
    root = write_synthetic(tmp_path / "d")
    items = synthetic_items("mcqa")
    items[9]["correct_option"] = "Z"
    (root / "siuo_mcqa.json").write_text(json.dumps(items))
    with pytest.raises(data.SIUODataError, match=r"^siuo_mcqa.json item question_id=10: field 'correct_option' is 'Z'"):
        data.load_items("mcqa", root)


def test_check_images_flag(tmp_path, clean_env):
    root = write_synthetic(tmp_path / "d", images=False)
    items, _ = data.load_items("gen", root, check_images=False)  # no image is opened
    assert len(items) == 167 and items[0]["image_path"].endswith("images/0.png")
    with pytest.raises(data.SIUODataError, match=r"siuo_gen.json item question_id=1: image file not found"):
        data.load_items("gen", root)


def test_decode_catches_what_verify_does_not(tmp_path, clean_env, monkeypatch):
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    # a 4x3 RGB PNG whose chunks and checksums are all valid but whose pixel data stops after 5 bytes
    # (it needs 3 rows x 13 bytes): verify() accepts it, only a full decode finds it short
    header = struct.pack(">IIBBBBB", 4, 3, 8, 2, 0, 0, 0)
    short = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 5)) + chunk(b"IEND", b"")
    from PIL import ImageFile

    # lmms_eval.api.task sets this process-wide flag to True when imported (as other tests do), and
    # then PIL fills a short image with black instead of failing
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
    root = write_synthetic(tmp_path / "d")
    (root / "images" / "0.png").write_bytes(short)
    assert len(data.load_items("gen", root)[0]) == 167  # verified: passes
    with pytest.raises(data.SIUODataError, match=r"question_id=1: image .*0.png cannot be decoded \(OSError: image file is truncated"):
        data.load_items("gen", root, decode_images=True)
    with pytest.raises(data.SIUODataError, match=r"question_id=1: image .*0.png cannot be decoded"):
        data.check_data_dir(root)  # `siuo data check` decodes every image


def test_check_data_dir_cross_checks_the_settings(tmp_path, clean_env):
    root = write_synthetic(tmp_path / "d")
    mcqa = synthetic_items("mcqa")
    mcqa[3]["question_id"] = 999
    (root / "siuo_mcqa.json").write_text(json.dumps(mcqa))
    with pytest.raises(data.SIUODataError, match=r"^siuo_mcqa.json item question_id=999: not in siuo_gen.json$"):
        data.check_data_dir(root)
    mcqa = synthetic_items("mcqa")
    mcqa[3]["category"] = data.CATEGORIES[0] if mcqa[3]["category"] != data.CATEGORIES[0] else data.CATEGORIES[1]
    (root / "siuo_mcqa.json").write_text(json.dumps(mcqa))
    with pytest.raises(data.SIUODataError, match=r"^siuo_mcqa.json item question_id=4: field 'category' differs from siuo_gen.json$"):
        data.check_data_dir(root)
    mcqa = synthetic_items("mcqa")
    mcqa[2]["image"] = "4.png"
    (root / "siuo_mcqa.json").write_text(json.dumps(mcqa))
    with pytest.raises(data.SIUODataError, match=r"^siuo_mcqa.json item question_id=3: field 'image' differs from siuo_gen.json$"):
        data.check_data_dir(root)


def test_read_json_errors(tmp_path, clean_env):
    root = write_synthetic(tmp_path / "d")
    (root / "siuo_gen.json").write_text("{not json")
    with pytest.raises(data.SIUODataError, match=r"siuo_gen.json: not valid JSON \("):
        data.load_items("gen", root)
    (root / "siuo_gen.json").write_text('{"question_id": 1}')
    with pytest.raises(data.SIUODataError, match=r"siuo_gen.json: expected a JSON list of items, got dict"):
        data.load_items("gen", root)


def _validate(items, setting="gen", **kw):
    data.validate_items(items, setting, "f.json", **kw)


@pytest.mark.parametrize(
    "setting, damage, message",
    [
        ("gen", lambda it: it.__setitem__(5, ["not", "a", "dict"]), r"^f.json item #5: expected an object, got list$"),
        ("gen", lambda it: it[5].pop("question_id"), r"^f.json item #5: missing field 'question_id'$"),
        ("gen", lambda it: it[5].update(question=None), r"^f.json item question_id=6: missing field 'question'$"),
        ("gen", lambda it: it[5].update(question_id=True), r"^f.json item question_id=True: field 'question_id' should be int, got bool$"),
        ("gen", lambda it: it[5].update(question_id="6"), r"^f.json item question_id=6: field 'question_id' should be int, got str$"),
        ("gen", lambda it: it[5].update(question=7), r"^f.json item question_id=6: field 'question' should be str, got int$"),
        ("gen", lambda it: it[5].update(safety_warning=" \n"), r"^f.json item question_id=6: field 'safety_warning' is empty$"),
        (
            "gen",
            lambda it: it[5].update(category="Self-harm"),
            r"^f.json item question_id=6: unknown category 'Self-harm' \(expected one of: self-harm, dangerous",
        ),
        ("gen", lambda it: it[6].update(question_id=2), r"^f.json item question_id=2: duplicate question_id \(also item #1\)$"),
        ("mcqa", lambda it: it[5].update(options=["A"]), r"^f.json item question_id=6: field 'options' should be dict, got list$"),
        (
            "mcqa",
            lambda it: it[5]["options"].update(E="e"),
            r"^f.json item question_id=6: field 'options' must have exactly the keys A, B, C, D, got \['A', 'B', 'C', 'D', 'E'\]$",
        ),
        ("mcqa", lambda it: it[5]["options"].update(B=" ", D=4), r"^f.json item question_id=6: option\(s\) B, D empty or not text$"),
        (
            "mcqa",
            lambda it: it[5].update(correct_option="a"),
            r"^f.json item question_id=6: field 'correct_option' is 'a', expected one of A-D$",
        ),
        ("mcqa", lambda it: it.pop(), r"^f.json: expected 167 items, found 166$"),
        ("mcqa", lambda it: it.append({**it[0], "question_id": 500}), r"^f.json: expected 167 items, found 168$"),
    ],
)
def test_validate_items_names_the_problem(setting, damage, message):
    items = synthetic_items(setting)
    _validate(items, setting)  # the undamaged items pass
    damage(items)
    with pytest.raises(data.SIUODataError, match=message):
        _validate(items, setting)


def test_validate_items_category_coverage_and_counts():
    items = synthetic_items("gen")
    for item in items:
        if item["category"] == "religion beliefs":
            item["category"] = "morality"
    with pytest.raises(data.SIUODataError, match=r"^f.json: no items in categories \['religion beliefs'\]$"):
        _validate(items)
    _validate(items[:3], expect_n=None)  # a subset (tests, --limit) may miss categories
    _validate(items[:3], expect_n=3)
    with pytest.raises(data.SIUODataError, match=r"expected 4 items, found 3"):
        _validate(items[:3], expect_n=4)


def test_sources_and_their_description(tmp_path, clean_env, monkeypatch):
    clean_env.setenv("SIUO_DATA_DIR", str(tmp_path / "env"))
    assert data.resolve_source(tmp_path / "arg") == data.DataSource((tmp_path / "arg").resolve(), "argument", None)
    assert data.resolve_source() == data.DataSource((tmp_path / "env").resolve(), "SIUO_DATA_DIR", None)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.resolve_source("~/x").data_dir == (tmp_path / "x").resolve()
    hub = data.DataSource(tmp_path, "huggingface", "rev1")
    assert hub.describe() == {"origin": "huggingface", "data_dir": str(tmp_path), "hf_repo": "sinwang/SIUO", "hf_revision": "rev1"}
    assert data.HF_REPO == "sinwang/SIUO" and data.HF_REVISION == "024e80a01795376b9fed12f8073a12f2275f22ee"
    assert data.FILES == {"gen": "siuo_gen.json", "mcqa": "siuo_mcqa.json"} and data.IMAGES_DIR == "images"


# ------------------------------------------------------------------- images stay inside the data folder


def _outside_image(tmp_path):
    from PIL import Image

    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    Image.new("RGB", (4, 4), (1, 2, 3)).save(outside / "secret.png")
    return outside / "secret.png"


@pytest.mark.parametrize("how", ["absolute", "dot-dot", "symlink", "symlinked folder"])
def test_an_image_outside_the_data_folder_fails_check_and_loading(how, fresh_data_dir, tmp_path, clean_env, capsys):
    secret = _outside_image(tmp_path)
    items = json.loads((fresh_data_dir / "siuo_gen.json").read_text())
    name = items[3]["image"]
    if how == "absolute":
        image = str(secret)
    elif how == "dot-dot":
        image = f"../../outside/{secret.name}"
    elif how == "symlink":
        (fresh_data_dir / "images" / name).unlink()
        (fresh_data_dir / "images" / name).symlink_to(secret)
        image = name
    else:
        (fresh_data_dir / "images" / "elsewhere").symlink_to(secret.parent, target_is_directory=True)
        image = f"elsewhere/{secret.name}"
    for setting in ("gen", "mcqa"):
        _rewrite(fresh_data_dir / data.FILES[setting], lambda rows: rows[3].update(image=image))
    qid = items[3]["question_id"]
    pattern = rf"siuo_gen.json item question_id={qid}: image {image!s:.10}.* resolves to .*secret.png, outside the data folder"
    for check_images in (True, False):  # never sent anywhere, checked or not
        with pytest.raises(data.SIUODataError, match=pattern.replace("(", r"\(")):
            data.load_items("gen", fresh_data_dir, check_images=check_images)
    assert siuo_main(["data", "check", str(fresh_data_dir)]) == 2
    err = capsys.readouterr().err
    assert f"question_id={qid}" in err and "outside the data folder" in err and "all present" not in err


def test_links_inside_the_data_folder_are_fine(fresh_data_dir, clean_env):
    images = fresh_data_dir / "images"
    first = sorted(images.iterdir())[0]
    (images / "shelf").mkdir()
    first.rename(images / "shelf" / first.name)
    first.symlink_to(images / "shelf" / first.name)
    items, _ = data.load_items("gen", fresh_data_dir)
    assert len(items) == data.N_ITEMS


def test_the_hub_snapshot_may_link_into_its_own_cache(tmp_path, clean_env, monkeypatch):
    """A Hugging Face snapshot's files are links into the repository's blob folder beside it."""
    import huggingface_hub

    root = write_synthetic(tmp_path / "src")
    repo = tmp_path / "hub" / "datasets--sinwang--SIUO"
    snapshot = repo / "snapshots" / data.HF_REVISION
    (snapshot / "images").mkdir(parents=True)
    (repo / "blobs").mkdir()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            blob = repo / "blobs" / path.name
            blob.write_bytes(path.read_bytes())
            (snapshot / path.relative_to(root)).symlink_to(blob)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kwargs: str(snapshot))
    items, source = data.load_items("gen")
    assert source.origin == "huggingface" and len(items) == 167


def test_unreadable_release_files_are_named(fresh_data_dir, clean_env):
    path = fresh_data_dir / "siuo_gen.json"
    path.write_text("[" * 100_000)
    with pytest.raises(data.SIUODataError, match=r"siuo_gen.json: nested too deeply to be the SIUO release$"):
        data.load_items("gen", fresh_data_dir)
    path.write_bytes(b'["\xff"]')
    with pytest.raises(data.SIUODataError, match=r"siuo_gen.json: not UTF-8 text \(invalid start byte at byte 2\)$"):
        data.load_items("gen", fresh_data_dir)


def test_an_image_link_loop_is_named(fresh_data_dir, clean_env):
    images = fresh_data_dir / "images"
    (images / "loop-a.png").symlink_to(images / "loop-b.png")
    (images / "loop-b.png").symlink_to(images / "loop-a.png")
    _rewrite(fresh_data_dir / "siuo_gen.json", lambda rows: rows[0].update(image="loop-a.png"))
    with pytest.raises(data.SIUODataError, match=r"siuo_gen.json item question_id=1001: image loop-a.png cannot be resolved \(.+\)$"):
        data.load_items("gen", fresh_data_dir, check_images=False)


def test_only_the_hub_snapshot_extends_the_data_folder(tmp_path, clean_env, monkeypatch):
    """A local copy in a folder named like a snapshot gets no wider root; the hub snapshot's root is
    the dataset's cache folder, not the cache above it."""
    import huggingface_hub
    from PIL import Image

    root = write_synthetic(tmp_path / "hub" / "datasets--sinwang--SIUO" / "snapshots" / data.HF_REVISION)
    Image.new("RGB", (4, 4)).save(tmp_path / "hub" / "datasets--sinwang--SIUO" / "beside.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "hub" / "above.png")
    items = json.loads((root / "siuo_gen.json").read_text())
    items[0]["image"] = "../../../beside.png"  # inside the dataset's cache folder
    (root / "siuo_gen.json").write_text(json.dumps(items))
    with pytest.raises(data.SIUODataError, match="outside the data folder"):
        data.load_items("gen", root, check_images=False)  # a local copy: its own folder only
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kwargs: str(root))
    assert data.load_items("gen", check_images=False)[1].origin == "huggingface"
    items[0]["image"] = "../../../../above.png"  # outside the dataset's cache folder
    (root / "siuo_gen.json").write_text(json.dumps(items) + " ")
    with pytest.raises(data.SIUODataError, match="outside the data folder"):
        data.load_items("gen", check_images=False)
