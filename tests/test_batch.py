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
