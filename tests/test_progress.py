"""Progress lines reach log handlers (a pipeline stage's log file) also while a rich bar is shown
on a terminal; the CLI's terminal handler drops those, since the bar says the same."""

from __future__ import annotations

import logging

import segue.progress as progress_module
from segue.cli import _configure_logging, _not_a_bar_line


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_lines_are_logged_under_a_bar_and_marked(monkeypatch):
    logger = logging.getLogger("segue")
    collect = Collect()
    logger.addHandler(collect)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        monkeypatch.setattr(progress_module, "_interactive", lambda: True)
        with progress_module.progress("counting", 10, "things") as bar:
            bar.every_s = 0.0
            bar.advance(4)
            assert bar._bar is not None  # the rich bar is shown
        lines = [r for r in collect.records if r.getMessage().startswith("counting:")]
        assert [r.getMessage().split(" (")[0] for r in lines] == [
            "counting: 4/10 things",
            "counting: 4/10 things",
        ]
        assert all(r.segue_bar for r in lines) and "ETA" in lines[0].getMessage()

        monkeypatch.setattr(progress_module, "_interactive", lambda: False)
        collect.records.clear()
        with progress_module.progress("plain", 2) as bar:
            bar.advance(2)
        (line,) = [r for r in collect.records if r.getMessage().startswith("plain:")]
        assert line.segue_bar is False
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)


def test_cli_terminal_handler_drops_bar_lines():
    logger = logging.getLogger("segue")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.handlers.clear()  # as in a fresh process: the CLI installs its handler
    try:
        _configure_logging()
        handlers = [h for h in logger.handlers if _not_a_bar_line in h.filters]
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
    assert len(handlers) == 1, "the CLI's terminal handler carries the filter"
    make = logging.getLogger("segue").makeRecord
    bar_line = make(
        "segue", logging.INFO, __file__, 0, "x: 1/2", (), None, extra={"segue_bar": True}
    )
    plain = make("segue", logging.INFO, __file__, 0, "x: 1/2", (), None, extra={"segue_bar": False})
    assert not handlers[0].filter(bar_line) and handlers[0].filter(plain)
