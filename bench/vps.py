"""The VPS under test (the demo container) and the app the roles deployed in it.

Everything the benchmark does on the VPS goes through Vps.sh: a shell script run
with `docker exec` in the container.
"""

import json
import shlex
import subprocess
from pathlib import PurePosixPath

import nginxconf

# Inside the container: the benchmark's scratch directory, its temporary server
# blocks in our Nginx and their access log; all removed when it ends.
WORK = "/tmp/bench"
NGINX_CONF = "/etc/nginx/conf.d/zz-bench.conf"
NGINX_LOG = "/var/log/nginx/bench-access.log"


class Vps:
    """The container, and the app `app` as the flaskapp role deployed it: in one of two
    slots (blue, green), each with its units <app>-<slot>.socket/.service, its settings
    in /etc/flaskapp/<app>/<slot>/ and its release at /srv/<app>/<slot>; Nginx reaches
    the serving slot through /srv/<app>/app.sock. find_serving_slot() fills in the slot,
    find_stack_url() the stack's URL (unless one is given)."""

    def __init__(self, container, app="hello", stack_url=None):
        self.container = container
        self.app = app
        self.stack_url = stack_url
        self.slot = None
        # CPU lists (taskset's format) for the load generators and for the servers
        # under test, once split_cpus() has split them; None: not pinned.
        self.load_cpus = self.server_cpus = None

    # --- running things in the container

    def exists(self):
        return subprocess.run(["docker", "container", "inspect", self.container],
                              capture_output=True).returncode == 0

    def sh(self, script, stdin=None, check=True, timeout=120):
        """Run a shell script in the container; return its stdout."""
        proc = subprocess.run(["docker", "exec", "-i", self.container, "sh", "-euc", script],
                              input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"in {self.container}: {script}\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def put(self, path, text):
        self.sh(f"cat > {shlex.quote(path)}", stdin=text)

    def read(self, path):
        return self.sh(f"cat {shlex.quote(path)}")

    def read_nginx(self, path):
        """A config file of Nginx's, parsed (see nginxconf)."""
        return nginxconf.parse(self.read(path))

    def wait_ready(self, url, what):
        """Wait up to 30 s for url to answer; else fail with the end of what's log."""
        ok = self.sh(f"for i in $(seq 1 60); do curl -fsSk -o /dev/null --max-time 1 "
                     f"{shlex.quote(url)} && echo ok && exit 0; sleep 0.5; done; exit 0")
        if "ok" not in ok:
            log = self.sh(f"tail -n 30 {WORK}/{what}.log 2>/dev/null || true", check=False)
            raise RuntimeError(f"{what} does not answer on {url}\n{log}")

    def start_unit(self, name, command, properties):
        """Run command as the transient systemd unit bench-NAME, with those properties
        and its output in WORK/NAME.log, on the servers' CPUs."""
        log = f"{WORK}/{name}.log"
        properties = [*properties, f"StandardOutput=append:{log}", f"StandardError=append:{log}"]
        if self.server_cpus:
            # sched_setaffinity(2) for the unit's processes (no cpuset controller needed).
            properties.append(f"CPUAffinity={self.server_cpus}")
        self.sh(shlex.join(["systemd-run", f"--unit=bench-{name}", "--collect", "--quiet",
                            *[f"--property={p}" for p in properties], "--", *command]))

    def stop_unit(self, name):
        self.sh(f"systemctl stop bench-{name}.service 2>/dev/null || true", check=False)

    # --- CPUs: the load generators on one, the servers under test on the others

    def split_cpus(self):
        """Give the load generators (wrk, h2load, the slowloris clients) the first CPU
        the container may use and the servers the others, so that neither takes the
        other's time. With one CPU there is nothing to split: they stay None."""
        cpus = self.sh("python3 -c 'import os; print(*sorted(os.sched_getaffinity(1)))'").split()
        if len(cpus) >= 2:
            self.load_cpus, self.server_cpus = cpus[0], ",".join(cpus[1:])

    def load_pin(self):
        """The argv prefix that runs a command on the load generators' CPUs ([]: not
        pinned)."""
        return ["taskset", "-c", self.load_cpus] if self.load_cpus else []

    def on_load_cpus(self, command):
        """command (a shell string) on the load generators' CPUs."""
        return shlex.join(self.load_pin()) + " " + command if self.load_cpus else command

    def on_server_cpus(self, command):
        return f"taskset -c {self.server_cpus} {command}" if self.server_cpus else command

    def pin_stack(self, cpus=None):
        """Move the stack's running processes to cpus (None: back to every CPU, as PID 1
        has them), every thread: Nginx (the master and its workers) and the app's
        serving slot (the Gunicorn master and its workers). The workers they start
        later inherit it. Each is moved as its own user: a container's root lacks
        CAP_SYS_NICE, which moving another user's process takes."""
        cpus = f"-c {cpus}" if cpus else "$(taskset -p 1 | awk '{print $NF}')"
        self.sh(f"master=$(systemctl show --property MainPID --value {self.service}); "
                f"for pid in $(pgrep -x nginx) $master $(pgrep -P $master); do "
                "owner=$(stat -c '--reuid=%u --regid=%g' /proc/$pid) || continue; "  # (gone meanwhile)
                f"setpriv $owner --clear-groups taskset -a -p {cpus} $pid >/dev/null; done")

    def unit_cpu_us(self, unit):
        """The CPU time (microseconds) the unit's processes have used: usage_usec of its
        cgroup's cpu.stat (cgroup v2, or its unified hierarchy on a hybrid host)."""
        out = self.sh(f"cg=$(systemctl show --property ControlGroup --value {unit}); "
                      "cat /sys/fs/cgroup/unified$cg/cpu.stat 2>/dev/null || cat /sys/fs/cgroup$cg/cpu.stat")
        return int(next(line.split()[1] for line in out.splitlines() if line.startswith("usage_usec ")))

    def unit_memory(self, unit):
        """The memory of the unit's processes (its cgroup's): how many, and their RSS and
        PSS (resident pages, shared ones divided among the processes sharing them) in
        MB, from /proc/PID/smaps_rollup."""
        out = self.sh(f"cg=$(systemctl show --property ControlGroup --value {unit}); "
                      "procs=/sys/fs/cgroup/unified$cg/cgroup.procs; [ -r $procs ] || procs=/sys/fs/cgroup$cg/cgroup.procs; "
                      "for pid in $(cat $procs 2>/dev/null); do "
                      "grep -E '^(Rss|Pss):' /proc/$pid/smaps_rollup 2>/dev/null | awk -v p=$pid '{print p, $1, $2}'; done")
        kb = {"Rss:": 0, "Pss:": 0}
        pids = set()
        for pid, field, value in (line.split() for line in out.splitlines()):
            pids.add(pid)
            kb[field] += int(value)
        return {"processes": len(pids), "rss_mb": round(kb["Rss:"] / 1024, 1),
                "pss_mb": round(kb["Pss:"] / 1024, 1)}

    # --- the app as deployed

    def find_serving_slot(self):
        """The slot that serves the app: `flaskapp-slot status`, or where app.sock links."""
        out = self.sh(f"/usr/local/sbin/flaskapp-slot status {self.app} 2>/dev/null || true",
                      check=False)
        try:
            slot = json.loads(out)["serving_slot"]
        except (ValueError, KeyError):
            slot = ""
        if not slot:  # /srv/hello/app.sock -> /run/hello-<slot>.sock
            link = self.sh(f"readlink /srv/{self.app}/app.sock || true", check=False).strip()
            slot = PurePosixPath(link).name.removesuffix(".sock").removeprefix(f"{self.app}-")
        if not slot:
            raise RuntimeError(f"no serving slot of {self.app} in {self.container} "
                               f"(flaskapp-slot status {self.app})")
        self.slot = slot
        return slot

    def find_stack_url(self):
        """Plain HTTP on port 80, or HTTPS on 443 when port 80 only redirects there."""
        if not self.stack_url:
            answer = self.sh("curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "
                             "--max-time 5 http://127.0.0.1:80/healthz")
            code, _, location = answer.partition(" ")
            https = code.startswith("3") and location.startswith("https://")
            self.stack_url = "https://127.0.0.1:443" if https else "http://127.0.0.1:80"
        return self.stack_url

    @property
    def app_dir(self):
        return f"/srv/{self.app}/{self.slot}/app"

    @property
    def venv(self):
        return f"/srv/{self.app}/{self.slot}/venv"

    @property
    def gunicorn_conf(self):
        return f"/etc/flaskapp/{self.app}/{self.slot}/gunicorn.conf.py"

    @property
    def env_file(self):
        return f"/etc/flaskapp/{self.app}/{self.slot}/env"

    @property
    def service(self):
        return f"{self.app}-{self.slot}.service"

    @property
    def vhost(self):
        """The app's vhost as the nginx role rendered it."""
        return f"/etc/nginx/sites-enabled/{self.app}.conf"

    def app_unit_properties(self, group=None):
        """Run as the app's user, in its release, with its environment and its state
        directory, so its database (and the app's group, or another: www-data for a
        socket that Nginx connects to)."""
        return [f"User={self.app}", f"Group={group or self.app}",
                f"WorkingDirectory={self.app_dir}", f"EnvironmentFile={self.env_file}",
                f"Environment=PATH={self.venv}/bin:/usr/bin:/bin",
                f"Environment=STATE_DIRECTORY=/var/lib/{self.app}"]

    def service_properties(self):
        """The app's systemd settings (user, environment, sandbox), as the serving
        slot's <app>-<slot>.service has them, less what would clash with the running
        service or start it differently."""
        unit = self.read(f"/etc/systemd/system/{self.service}")
        service = unit.split("[Service]", 1)[1].split("\n[", 1)[0]
        # (StateDirectory stays: the same directory, the app's database, writable.)
        skip = ("Type", "NotifyAccess", "RuntimeDirectory", "RuntimeDirectoryMode", "ExecStartPre",
                "ExecStart", "ExecReload", "KillMode", "TimeoutStopSec", "Restart", "RestartSec")
        return [line for line in service.splitlines()
                if "=" in line and not line.startswith("#") and line.split("=", 1)[0] not in skip]

    def gunicorn_settings(self, *names):
        """Settings of the app's gunicorn.conf.py, as Python reads the file (in the
        app's venv, as Gunicorn would): str(value), or None where the file sets none."""
        script = ("import json, runpy, sys\n"
                  "conf = runpy.run_path(sys.argv[1])\n"
                  "print(json.dumps({k: None if conf.get(k) is None else str(conf[k]) "
                  "for k in sys.argv[2:]}))\n")
        out = self.sh(shlex.join([f"{self.venv}/bin/python", "-", self.gunicorn_conf, *names]),
                      stdin=script)
        return json.loads(out.strip().splitlines()[-1])
