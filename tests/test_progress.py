from audiodistill.progress import Progress


def test_progress_prints_throttled_lines_and_always_the_last(capsys):
    quiet = Progress("eval m", 3, every_s=3600)
    for _ in range(3):
        quiet.step()
    assert capsys.readouterr().err.splitlines() == ["eval m: 3/3 utterances, 0 s"]
    chatty = Progress("eval m", 2, every_s=0)
    chatty.step()
    chatty.step()
    assert len(capsys.readouterr().err.splitlines()) == 2
