#!/usr/bin/env python3
"""The benchmark's peer: a command executor on pymesos's MesosExecutorDriver (pymesos
0.3.15 from PyPI, JSON only). Each LAUNCH runs TaskInfo.command.value with /bin/sh -c in
a process of its own: TASK_RUNNING once spawned, then TASK_FINISHED or TASK_FAILED by exit
status; KILL terminates it (TASK_KILLED); SHUTDOWN kills every task. It runs many tasks,
as our daemon's custom mode does, so both can be measured the same way.
"""

import os
import signal
import subprocess
import sys
import threading

from pymesos import Executor, MesosExecutorDriver


class Commands(Executor):
    def __init__(self):
        self.procs = {}
        self.lock = threading.Lock()

    def update(self, driver, task_id, state, message=None):
        status = {"task_id": {"value": task_id}, "state": state,
                  "executor_id": {"value": os.environ["MESOS_EXECUTOR_ID"]}}
        if message:
            status["message"] = message
        try:
            driver.sendStatusUpdate(status)
        except Exception as e:  # pymesos raises when not connected
            print("update not sent:", e, file=sys.stderr)

    def launchTask(self, driver, task):
        task_id = task["task_id"]["value"]
        command = task.get("command", {}).get("value", "true")
        proc = subprocess.Popen(["/bin/sh", "-c", command], start_new_session=True)
        with self.lock:
            self.procs[task_id] = proc
        self.update(driver, task_id, "TASK_RUNNING")

        def wait():
            code = proc.wait()
            with self.lock:
                killed = self.procs.pop(task_id, None) is None
            if killed or code < 0:
                self.update(driver, task_id, "TASK_KILLED")
            elif code == 0:
                self.update(driver, task_id, "TASK_FINISHED")
            else:
                self.update(driver, task_id, "TASK_FAILED", "Command exited with status %d" % code)

        threading.Thread(target=wait, daemon=True).start()

    def killTask(self, driver, task_id):
        with self.lock:
            proc = self.procs.pop(task_id["value"], None)
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def shutdown(self, driver):
        with self.lock:
            procs = list(self.procs.items())
            self.procs.clear()
        for _, proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    driver = MesosExecutorDriver(Commands(), use_addict=False)
    driver.run()
