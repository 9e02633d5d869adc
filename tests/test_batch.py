"""Batch runs with threads, through the CLI: one folder per row, rows at once, a summary table, a
bad row failing alone, re-runs skipping done rows, and bad tables refused before anything runs."""

import json
from pathlib import Path

from tests.media_factory import tone
from tests.test_cli import assert_one_line_error, cadenza, write

WF = """\
    inputs:
      sound: {type: audio}
      fade: {type: number, default: 0.1}
    steps:
      - {id: a, tool: fade_audio, args: {audio: $sound, fade_in: $fade}}
      - {id: b, tool: fade_audio, args: {audio: $sound, fade_out: $fade}}
      - {id: both, tool: concat_audio, args: {clips: [$a, $b]}}
    outputs: {joined: $both}
    """


def test_batch_with_threads_one_folder_per_row_a_bad_row_fails_alone_and_reruns_skip_done_rows(tmp_path):
    wf = write(tmp_path / "wf.yaml", WF)
    (tmp_path / "media").mkdir()
    for i in (1, 2, 4):
        tone(tmp_path / "media" / f"s{i}.wav", seconds=0.3 + 0.1 * i)
    table = write(tmp_path / "media" / "rows.csv", "sound,fade\ns1.wav,0.05\ns2.wav,\nmissing.wav,0.1\ns4.wav,0.2\n")
    r = cadenza("workflow", "run", wf, "--batch", table, "--out", "out", "--json", cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # one row failed
    doc = json.loads(r.stdout)
    assert [row["status"] for row in doc["rows"]] == ["succeeded", "succeeded", "failed", "succeeded"]
    assert "missing.wav" in doc["rows"][2]["error"]
    for i in (1, 2, 4):
        row = doc["rows"][i - 1]
        assert Path(row["out_dir"]) == (tmp_path / "out" / f"row-{i:04d}").resolve()
        joined = row["outputs"]["joined"]
        assert Path(joined["path"]).parent == Path(row["out_dir"])
        assert abs(joined["duration"] - 2 * (0.3 + 0.1 * i)) < 0.02
        assert json.loads((Path(row["out_dir"]) / "run.json").read_text())["status"] == "succeeded"
    summary = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert summary["counts"] == {"succeeded": 3, "failed": 1}
    csv_lines = (tmp_path / "out" / "batch.csv").read_text().splitlines()
    assert csv_lines[0] == "row,status,outputs,seconds,error,out_dir" and len(csv_lines) == 5
    # rows 1, 2 and 4 are done; fixing row 3 runs it alone (its steps are new, the others' are not run)
    write(table, "sound,fade\ns1.wav,0.05\ns2.wav,\ns1.wav,0.1\ns4.wav,0.2\n")
    r = cadenza("workflow", "run", wf, "--batch", table, "--out", "out", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [row["status"] for row in json.loads(r.stdout)["rows"]] == ["done", "done", "succeeded", "done"]


def test_bad_batch_tables_and_runners_are_one_line_errors_before_anything_runs(tmp_path):
    wf = write(tmp_path / "wf.yaml", WF)
    tone(tmp_path / "s.wav", seconds=0.3)
    cases = {
        "missing.csv": ("fade\n0.1\n", ["batch table", "missing column 'sound'"]),
        "unknown.csv": ("sound,speed\ns.wav,2\n", ["batch table", "unknown column 'speed'"]),
        "empty.csv": ("sound,fade\n", ["batch table", "is empty"]),
        "empty.jsonl": ("\n", ["is empty"]),
        "rows.txt": ("sound\ns.wav\n", ["expected a .csv or .jsonl file"]),
    }
    for name, (text, fragments) in cases.items():
        table = write(tmp_path / name, text)
        assert_one_line_error(cadenza("workflow", "run", wf, "--batch", table, "--out", f"o-{name}", cwd=tmp_path),
                              2, *fragments)
        assert not (tmp_path / f"o-{name}").exists()
    table = write(tmp_path / "ok.jsonl", '{"sound": "s.wav"}\n')
    assert_one_line_error(cadenza("workflow", "run", wf, "--batch", table, "--runner", "ray://127.0.0.1:1",
                                  "--out", "o-ray", cwd=tmp_path), 2, "Ray cluster ray://127.0.0.1:1 is not reachable")
    assert not (tmp_path / "o-ray").exists()
    assert_one_line_error(cadenza("workflow", "run", wf, "--batch", table, "--runner", "rya", "--out", "o-rya",
                                  cwd=tmp_path), 2, "unknown runner 'rya'")


def test_dub_batch_reads_the_dub_workflows_columns(tmp_path):
    tone(tmp_path / "s.wav", seconds=0.3)
    table = write(tmp_path / "videos.csv", "to\nes\n")
    assert_one_line_error(cadenza("dub", "--batch", table, "--out", "o", cwd=tmp_path), 2, "missing column 'video'")
    table = write(tmp_path / "videos.csv", "video,speed\nv.mp4,2\n")
    assert_one_line_error(cadenza("dub", "--batch", table, "--to", "es", "--out", "o", cwd=tmp_path), 2,
                          "unknown column 'speed'")
    assert_one_line_error(cadenza("dub", "s.wav", "--batch", table, "--out", "o", cwd=tmp_path), 2,
                          "--batch TABLE takes its videos from the table")
    assert not (tmp_path / "o").exists()


def test_a_single_run_refused_for_an_unreachable_cluster_leaves_no_output_folder(tmp_path):
    wf = write(tmp_path / "wf.yaml", WF)
    tone(tmp_path / "s.wav", seconds=0.3)
    r = cadenza("workflow", "run", wf, "--input", "sound=s.wav", "--runner", "ray://127.0.0.1:1", "--out", "o",
                cwd=tmp_path)
    assert_one_line_error(r, 2, "Ray cluster ray://127.0.0.1:1 is not reachable")
    assert not (tmp_path / "o").exists()
    (tmp_path / "mine").mkdir()  # a folder the user made is theirs: kept, though the run was refused
    r = cadenza("workflow", "run", wf, "--input", "sound=s.wav", "--runner", "ray://127.0.0.1:1", "--out", "mine",
                cwd=tmp_path)
    assert r.returncode == 2 and (tmp_path / "mine").is_dir()


def test_dub_batch_dubs_each_row_into_its_folder_with_its_lines_and_a_bad_row_fails_alone(workdir, monkeypatch):
    """Two real rows (a clip dubbed into Spanish; a video that does not exist), threads."""
    from cadenza import cli
    from cadenza.llm.testing import ScriptedChatModel
    from cadenza.tools.speech.translate import translation_llm
    from tests.test_dub import _clip, _translator

    monkeypatch.setenv("CADENZA_CACHE_DIR", str(workdir / ".cache"))
    (workdir / "media").mkdir()
    _clip(workdir / "media" / "clip.mp4")
    write(workdir / "media" / "videos.csv", "video,background\nclip.mp4,keep\nnone.mp4,\n")
    llm = ScriptedChatModel([_translator] * 20)
    with translation_llm(llm):
        code = cli.main(["dub", "--batch", "media/videos.csv", "--to", "es", "--out", "out", "--json"])
    assert code == 1  # one row failed
    summary = json.loads((workdir / "out" / "batch.json").read_text())
    first, second = summary["rows"]
    assert (first["status"], second["status"]) == ("succeeded", "failed")
    assert "none.mp4" in second["error"]
    row = workdir / "out" / "row-0001"
    lines = json.loads((row / "dub_lines.json").read_text(encoding="utf-8"))  # as a single dub writes it
    assert lines["language"] == "es" and "Buenos días" in " ".join(ln["translation"] for ln in lines["lines"])
    assert first["outputs"]["dub_lines"] == str(row / "dub_lines.json") and "report" not in first["outputs"]
    dubbed = Path(first["outputs"]["video"]["path"])
    assert dubbed.parent == row and dubbed.exists()
    run = json.loads((row / "run.json").read_text())
    assert run["inputs"]["to"] == "es" and run["inputs"]["background"] == "keep"  # the flag, then the column

    # the same batch again: the dubbed row is done (its outputs as shown before), only the bad row runs
    with translation_llm(ScriptedChatModel([])):
        code = cli.main(["dub", "--batch", "media/videos.csv", "--to", "es", "--out", "out", "--json"])
    again = json.loads((workdir / "out" / "batch.json").read_text())["rows"]
    assert code == 1 and [r["status"] for r in again] == ["done", "failed"]
    assert again[0]["outputs"] == first["outputs"]
