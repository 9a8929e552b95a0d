"""The live tree (Rich Live on a forced-terminal, recording console): lifecycle, cropping, rate."""

from __future__ import annotations

import io
import sys
import time

from helpers import wait_until
from rich.console import Console

from rlm_cli.run.events import EventBus, RlmStarted
from rlm_cli.view.demo import EventScript, demo_run
from rlm_cli.view.live import LiveView


def terminal(width: int = 120, height: int = 40) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=width, height=height, record=True,
                   color_system="truecolor")


def frame_text(view: LiveView, width: int = 120, height: int = 40) -> str:
    console = Console(file=io.StringIO(), force_terminal=False, width=width, height=height, record=True)
    console.print(view)
    return console.export_text()


def test_live_run_start_to_finish_leaves_a_summary():
    console = terminal()
    view = LiveView(console, refresh_per_second=50)
    stderr = sys.stderr
    bus = EventBus([view])
    script = demo_run(200, emit=bus.emit, finish=False)
    assert view._live is not None and sys.stderr is not stderr  # live, stderr redirected above it
    assert wait_until(lambda: view.renders >= 1, 10)  # a frame rendered while live
    script.finish()
    assert view._live is None and sys.stderr is stderr
    assert view.renders >= 1
    out = console.export_text()
    summary = out[out.rindex("◆ Which modules"):]
    assert "✓ iteration 3 · answer" in summary and "answered in 12.5s" in summary
    assert "sub-calls 204 done (3 failed)" in summary
    assert "\x1b[" in console.file.getvalue()  # it really drew on a terminal (colours, cursor moves)
    view.close()  # idempotent


def test_close_on_interrupt_stops_live_and_is_idempotent():
    console = terminal()
    view = LiveView(console, refresh_per_second=50)
    stderr = sys.stderr
    s = EventScript(emit=view)
    s.reply("r0", 0, "```repl\nwhile True: pass\n```")
    s.step_start("r0", 0, 0, "while True: pass")
    view.close()  # Ctrl-C: no RunFinished ever comes
    view.close()
    assert view._live is None and sys.stderr is stderr
    s.step_end("r0", 0, 0)  # late events after close are harmless and draw nothing
    assert "iteration 1" in console.export_text()


def test_close_survives_a_broken_terminal():
    class Broken(io.StringIO):
        def write(self, s):
            raise OSError("EIO")

    stderr = sys.stderr
    view = LiveView(Console(file=Broken(), force_terminal=True, width=80, height=20), refresh_per_second=50)
    EventScript(emit=view)  # starting fails: the sink stays silent instead of raising
    view.close()
    assert view._live is None and sys.stderr is stderr


def test_tall_tree_is_cropped_to_the_terminal_keeping_header_newest_lines_and_footer():
    s = EventScript()
    for i in range(10):
        s.reply("r0", i, f"step {i}\n```repl\nx = {i}\n```")
        s.step_start("r0", i, 0, "\n".join(f"line_{k} = {k}" for k in range(6)))
        if i < 9:
            s.step_end("r0", i, 0, stdout="a\nb\nc\n")
    for k in range(6):
        s.call_start("r0", 9, 0, f"running prompt {k}", kind="rlm")
    view = LiveView(terminal(), summary=False)
    view.opts.keep_iterations = 50
    for ev in s.events:
        view(ev)
    view.close()
    out = frame_text(view, height=14)
    lines = out.rstrip("\n").split("\n")
    assert len(lines) <= 14
    assert lines[0].startswith("◆ Which modules") and "root openai/root" in lines[1]
    assert "line(s) above" in lines[2]
    assert "sub-calls" in lines[-1] or "sub-calls" in lines[-2]  # the footer (maybe wrapped)
    assert "running prompt" in out  # the newest work is in view


def test_frames_are_rate_bounded_and_events_do_not_render():
    console = terminal()
    view = LiveView(console, refresh_per_second=8, summary=False)
    events = demo_run(2000, finish=False).events
    t0 = time.monotonic()
    for ev in events:  # ~4,000 events as fast as possible
        view(ev)
    elapsed = time.monotonic() - t0
    renders = view.renders
    view.close()
    assert renders <= elapsed * 8 + 3, (renders, elapsed)  # speed itself is bench/bench_view.py's job


def test_live_frame_shows_running_nested_work():
    events = demo_run(30).events
    last = max(i for i, ev in enumerate(events) if isinstance(ev, RlmStarted))
    view = LiveView(terminal(), summary=False, clock=lambda: 3.0)
    for ev in events[: last + 4]:
        view.model.apply(ev)
    out = frame_text(view)
    assert out.count("⠋ rlm openai/root") == 2
    assert "27 sub-calls finished" in out and out.count("RateLimitError") == 3
    assert "2 running" in out.rstrip().splitlines()[-1] + out.rstrip().splitlines()[-2]


def test_fast_layout_draws_what_rich_tree_draws():
    from rlm_cli.view.live import tree_lines
    from rlm_cli.view.render import Renderer, RenderOptions
    from rlm_cli.view.tree import RunModel

    events = demo_run(40).events
    last = max(i for i, ev in enumerate(events) if isinstance(ev, RlmStarted))
    for cut, opts in ((last + 4, RenderOptions.live()), (len(events), RenderOptions.show())):
        model = RunModel(clock=lambda: 2.0)
        for ev in events[:cut]:
            model.apply(ev)
        for width in (60, 160):
            tree = Renderer(model, opts).tree()
            console = Console(file=io.StringIO(), width=width, record=True)
            console.print(tree, crop=True)
            fast = Console(file=io.StringIO(), width=width, record=True)
            for line in tree_lines(tree, width, fast):
                fast.print(line)
            fast_text, rich_text = fast.export_text(), console.export_text()
            assert all(len(line) <= width for line in fast_text.splitlines())
            if width == 160 and opts.mode == "live":
                assert fast_text == rich_text  # where nothing needs wrapping, the very same drawing
            else:  # Rich wraps long multi-line labels; the live layout crops every line instead
                assert len(fast_text.splitlines()) <= len(rich_text.splitlines())
