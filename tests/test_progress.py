from audiodistill.progress import Progress, Stages


def test_progress_prints_throttled_lines_and_always_the_last(capsys):
    quiet = Progress("eval m", 3, every_s=3600)
    for _ in range(3):
        quiet.step()
    assert capsys.readouterr().err.splitlines() == ["eval m: 3/3 utterances, 0 s"]
    chatty = Progress("eval m", 2, every_s=0)
    chatty.step()
    chatty.step()
    assert len(capsys.readouterr().err.splitlines()) == 2


def test_stages_print_a_line_as_each_begins(capsys):
    stages = Stages("serve")
    stages("starting Ray")
    stages("ready on 127.0.0.1:8000")
    assert capsys.readouterr().err.splitlines() == [
        "serve: starting Ray, 0 s",
        "serve: ready on 127.0.0.1:8000, 0 s",
    ]
