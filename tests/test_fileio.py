"""The two primitives every stage's integrity rests on, tested against real processes: a
write killed midway leaves the old file whole, and the file lock excludes another process."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, **kwargs):
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, **kwargs)


def test_a_write_killed_midway_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "result.json"
    target.write_text(json.dumps({"old": True}))
    # The writer stalls once its bytes are written (in its fsync) and is killed there:
    # whatever it wrote by then must not show in `target`.
    code = (
        "import time\n"
        "from pathlib import Path\n"
        "from vidcls import fileio\n"
        "def stall(fd):\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        "fileio.os.fsync = stall\n"
        f"fileio.atomic_write_bytes(Path({str(target)!r}), b'{{\"new\": ' + b'1' * 5_000_000 + b'}}')\n"
    )
    process = _python(code, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"  # the data is written, not yet renamed
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert json.loads(target.read_text()) == {"old": True}


def test_the_lock_excludes_another_process(tmp_path):
    shared = tmp_path / "manifest.jsonl"
    holder = _python(
        "import time\nfrom pathlib import Path\nfrom vidcls.fileio import locked\n"
        f"with locked(Path({str(shared)!r})):\n    print('held', flush=True)\n    time.sleep(1.5)\n",
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    from vidcls.fileio import locked

    started = time.monotonic()
    with locked(shared):
        waited = time.monotonic() - started
    holder.wait()
    assert waited > 0.8, f"took the lock after {waited:.2f} s while another process held it"
