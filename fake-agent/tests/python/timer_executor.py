#!/usr/bin/env python3
"""A custom Mesos executor in plain Python (standard library only), written against the
v1 HTTP executor API and nothing of ours: the fake agent must judge any executor, not
only executors built on our Rust library.

Each task waits the seconds given as text in TaskInfo.data, then finishes; KILL stops it
(TASK_KILLED); MESSAGE is echoed; SHUTDOWN kills every task and exits once the agent has
acknowledged every update. Updates are kept until acknowledged, resent while
unacknowledged, and carried in the SUBSCRIBE that follows an agent restart (with
MESOS_CHECKPOINT=1), as the API asks. JSON on the wire.
"""

import base64, http.client, json, os, sys, threading, time, uuid

ENV = os.environ
FRAMEWORK = {"value": ENV["MESOS_FRAMEWORK_ID"]}
EXECUTOR = {"value": ENV["MESOS_EXECUTOR_ID"]}
PID = ENV["MESOS_SLAVE_PID"]  # slave(1)@host:port
PATH = "/" + PID.split("@")[0] + "/api/v1/executor"
HOST, PORT = PID.split("@")[1].rsplit(":", 1)
CHECKPOINT = ENV.get("MESOS_CHECKPOINT") == "1"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

lock = threading.Lock()
unacked = {}   # uuid (base64) -> [update, last sent]
tasks = {}     # task id -> [TaskInfo, timer, ended]
launched = {}  # task id -> TaskInfo, until one of its updates is acknowledged
agent_id = None
done = threading.Event()


def post(call):
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=5)
    try:
        conn.request("POST", PATH, json.dumps(call), HEADERS)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def call(kind, **fields):
    return dict(type=kind, framework_id=FRAMEWORK, executor_id=EXECUTOR, **fields)


def update(task_id, state):
    status = {"task_id": {"value": task_id}, "state": state, "source": "SOURCE_EXECUTOR",
              "uuid": base64.b64encode(uuid.uuid4().bytes).decode(), "executor_id": EXECUTOR,
              "timestamp": time.time()}
    if agent_id:
        status["agent_id"] = agent_id
    with lock:
        unacked[status["uuid"]] = [status, time.time()]
        if task_id in tasks:
            tasks[task_id][2] = state in ("TASK_FINISHED", "TASK_KILLED", "TASK_ERROR", "TASK_FAILED")
    post(call("UPDATE", update={"status": status}))


def resender():
    while not done.is_set():
        time.sleep(0.3)
        with lock:
            due = [u for u in unacked.values() if time.time() - u[1] > 1.0]
            for u in due:
                u[1] = time.time()
        for status, _ in due:
            post(call("UPDATE", update={"status": status}))


def finish(task_id):
    with lock:
        ended = tasks[task_id][2]
    if not ended:
        update(task_id, "TASK_FINISHED")


def launch(task):
    task_id = task["task_id"]["value"]
    try:
        seconds = float(base64.b64decode(task.get("data", "")).decode().strip())
    except ValueError:
        return update(task_id, "TASK_ERROR")
    timer = threading.Timer(seconds, finish, [task_id])
    with lock:
        tasks[task_id] = [task, timer, False]
    update(task_id, "TASK_RUNNING")
    timer.start()


def kill(task_id):
    with lock:
        entry = tasks.get(task_id)
    if entry is None:
        return update(task_id, "TASK_KILLED")
    entry[1].cancel()
    if not entry[2]:
        update(task_id, "TASK_KILLED")


def shutdown():
    for task_id in list(tasks):
        kill(task_id)
    deadline = time.time() + 10
    while unacked and time.time() < deadline:
        time.sleep(0.05)
    done.set()


def handle(event):
    global agent_id
    kind = event["type"]
    if kind == "SUBSCRIBED":
        agent_id = event["subscribed"]["agent_info"]["id"]
    elif kind == "LAUNCH":
        launched[event["launch"]["task"]["task_id"]["value"]] = event["launch"]["task"]
        launch(event["launch"]["task"])
    elif kind == "KILL":
        kill(event["kill"]["task_id"]["value"])
    elif kind == "MESSAGE":
        post(call("MESSAGE", message={"data": event["message"]["data"]}))
    elif kind == "ACKNOWLEDGED":
        with lock:
            unacked.pop(event["acknowledged"]["uuid"], None)
            launched.pop(event["acknowledged"]["task_id"]["value"], None)
    elif kind == "SHUTDOWN":
        threading.Thread(target=shutdown).start()


def subscribe():
    """One subscription: SUBSCRIBE, then read RecordIO events until the stream ends."""
    with lock:
        body = call("SUBSCRIBE", subscribe={
            "unacknowledged_tasks": list(launched.values()),
            "unacknowledged_updates": [{"framework_id": FRAMEWORK, "status": u[0]} for u in unacked.values()]})
    conn = http.client.HTTPConnection(HOST, int(PORT), timeout=None)
    conn.request("POST", PATH, json.dumps(body), HEADERS)
    response = conn.getresponse()
    if response.status != 200:
        return False
    while not done.is_set():
        line = response.readline()
        if not line:
            break
        handle(json.loads(response.read(int(line))))
    return True


def connection_loop(outcome):
    """Subscribes, and with checkpointing resubscribes within 15 s of a loss."""
    lost_at = None
    while not done.is_set():
        try:
            subscribed = subscribe()
        except OSError:
            subscribed = False
        if done.is_set():
            return
        if subscribed:
            lost_at = None
        lost_at = lost_at or time.time()
        if not CHECKPOINT or time.time() - lost_at > 15:
            outcome.append(1)  # the agent is lost: give up
            done.set()
            return
        time.sleep(0.3)


def main():
    outcome = []
    threading.Thread(target=resender, daemon=True).start()
    threading.Thread(target=connection_loop, args=(outcome,), daemon=True).start()
    done.wait()
    return outcome[0] if outcome else 0


if __name__ == "__main__":
    sys.exit(main())
