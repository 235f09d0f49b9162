"""A report folder serves one run at a time, and never shows the previous run's verdict."""

from __future__ import annotations

import pytest

from harness.report import folder


def test_a_second_run_on_a_folder_in_use_is_refused_with_a_clear_message(tmp_path):
    with (
        folder.claimed(tmp_path / "r"),
        pytest.raises(folder.FolderInUse, match="in use by another twinyard run"),
        folder.claimed(tmp_path / "r"),
    ):
        pass
    with folder.claimed(tmp_path / "r"):  # released when the first run ended
        pass


def test_claiming_a_folder_removes_the_previous_runs_reports(tmp_path):
    (tmp_path / "verdict.json").write_text('{"passed": true}')
    (tmp_path / "report.html").write_text("<html>")
    (tmp_path / "notes.txt").write_text("mine")
    with folder.claimed(tmp_path):
        assert not (tmp_path / "verdict.json").exists()
        assert not (tmp_path / "report.html").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not ours: left alone


def test_a_report_dir_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(folder.FolderInUse, match="is a file"), folder.claimed(target):
        pass
