"""gridmill_log -- what the user sees of a run's logs, and DIR/gridmill.log that keeps all of them.

Every stage's stderr reaches the supervisor through a pipe, a line at a time (one thread per stage). Each line
goes whole to DIR/gridmill.log (and to --log-file), whatever -q says. The terminal sees what a GDAL utility
shows: warnings and errors, as `gridmill-reader: warning: MESSAGE`; with --verbose every line as the stage
wrote it; with -q errors and the warnings that data is lost (level "loss": points not drawn, polygons skipped). Lines that are not a gridmill stage's log line (a custom stage's own output,
valgrind's) are shown as they are (with -q only a stage's last word, `gridmill-STAGE: …`). Once the supervisor stops a run after a failure, the lines of the stages it
stopped go to the log only (unless --verbose): the failure is one line. The supervisor's own stderr passes
through the same relay, so on a terminal a line first clears the live progress line, and the two never mix.
"""

import re
import sys
import threading
import time

LINE = re.compile(r"^\d{4}-\d\d-\d\dT[0-9:.]+Z (\S+)\[(\d+)\] (error|loss|warn|info|debug): (.*)$")
FATAL = re.compile(r"^gridmill-[a-z-]+: ")  # a stage's last word before it exits (bad options, bad input)
HOLD_S = 0.3  # how long a warning waits: longer than the supervisor takes to see a stage die (50 ms polls)
LEVEL_WORD = {"error": "error", "loss": "warning", "warn": "warning"}  # loss: data lost, shown even with -q


class Relay:
    """Takes every log line of the run: keeps it in the log files, shows on stderr what the mode shows."""

    def __init__(self, mode, stream=None):
        self.mode = mode            # "quiet", "default" or "verbose"
        self.stream = stream or sys.__stderr__
        self.lock = threading.RLock()
        self.files = []
        self.pending = []           # lines before the first log file opens
        self.progress = None        # gridmill_progress.Progress: cleared before a line is shown
        self.stopping = False       # the run is being stopped after a failure
        self.errors = {}            # stage pid -> error lines it wrote
        self.threads = {}           # stage pid -> the thread reading its stderr
        self.held = []              # (time, line): warnings shown HOLD_S after they came
        self.timer = None

    def open(self, path):
        """Also appends every line (those already seen first) to 'path'. Returns None, or the OSError."""
        try:
            f = open(path, "a", encoding="utf-8", errors="replace", buffering=1)
        except OSError as e:
            return e
        with self.lock:
            f.writelines(self.pending)
            self.pending = []
            self.files.append(f)
        return None

    def _keep(self, text):
        if self.files:
            for f in self.files:
                try:
                    f.write(text)
                except OSError:
                    pass
        else:
            self.pending.append(text)

    def show(self, text):
        """Writes 'text' (whole lines) on the terminal's stderr, the live progress line cleared first."""
        with self.lock:
            if self.progress:
                self.progress.clear()
            self.stream.write(text)
            self.stream.flush()

    def stage_line(self, pid, line):
        """Takes one line a stage wrote on stderr."""
        m = LINE.match(line)
        with self.lock:
            self._keep(line + "\n")
            level = m.group(3) if m else "error" if FATAL.match(line) else None
            if level == "error":
                self.errors[pid] = self.errors.get(pid, 0) + 1
            if self.mode == "verbose":
                self.show(line + "\n")
            elif self.stopping and level != "loss":  # lost data is never hidden
                return
            elif not m:  # not a gridmill stage's log line: shown as it is, unless -q (the exit says it failed)
                if self.mode != "quiet" or level == "error":
                    self.show(line + "\n")
            elif level == "error":
                self.show(f"{m.group(1)}: error: {m.group(4)}\n")
            elif level == "loss" or (level == "warn" and self.mode == "default"):
                # held a moment: a warning that a stage's death causes (a peer gone) is not shown once the run
                # is stopping for it, so a failure stays one line
                self.held.append((time.monotonic(), level, f"{m.group(1)}: {LEVEL_WORD[level]}: {m.group(4)}\n"))
                self._arm()

    def _arm(self):
        if self.timer is None:
            self.timer = threading.Timer(HOLD_S, self.release)
            self.timer.daemon = True
            self.timer.start()

    def release(self, everything=False):
        """Shows the held warnings older than HOLD_S (all with 'everything'), unless the run is stopping."""
        with self.lock:
            self.timer = None
            now = time.monotonic()
            while self.held and (everything or now - self.held[0][0] >= HOLD_S):
                _, level, text = self.held.pop(0)
                if not self.stopping or level == "loss":  # lost data is never hidden
                    self.show(text)
            if self.held:
                self._arm()

    def follow(self, pid, pipe):
        """Reads the stderr pipe of stage 'pid' to its end in a thread of its own."""
        def run():
            with pipe:
                for raw in iter(pipe.readline, b""):
                    self.stage_line(pid, raw.decode("utf-8", "replace").rstrip("\r\n"))
        t = threading.Thread(target=run, daemon=True)
        self.threads[pid] = t
        t.start()

    def drain(self, pid, timeout=2.0):
        """Waits (a bounded time) until every line stage 'pid' wrote is taken; returns its error lines."""
        t = self.threads.get(pid)
        if t:
            t.join(timeout)
        return self.errors.get(pid, 0)

    def close(self):
        self.release(everything=True)
        with self.lock:
            for f in self.files:
                try:
                    f.close()
                except OSError:
                    pass
            self.files = []


class SupervisorStream:
    """Stands for sys.stderr in the supervisor: its lines are shown (the supervisor already leaves out what -q
    hides) and kept in the log files with a time stamp, as the stages' are, level "note"."""

    def __init__(self, relay, prog):
        self.relay = relay
        self.prog = prog
        self.buf = ""

    def write(self, s):
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            self._line(line)
        return len(s)

    def _line(self, line):
        import datetime  # pylint: disable=import-outside-toplevel
        import os  # pylint: disable=import-outside-toplevel
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        msg = line[len(self.prog) + 2:] if line.startswith(self.prog + ": ") else line
        with self.relay.lock:
            self.relay._keep(f"{now} {self.prog}[{os.getpid()}] note: {msg}\n")  # pylint: disable=protected-access
            self.relay.show(line + "\n")

    def flush(self):
        if self.buf:
            self.write("\n")

    def isatty(self):
        return self.relay.stream.isatty()

    def fileno(self):
        return self.relay.stream.fileno()
