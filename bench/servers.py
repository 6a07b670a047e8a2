"""The servers the benchmark measures: one object each in SERVERS.

A server says what it is (name, about), how it is shown (color: its bars in
chart.png; None keeps it out of the chart), what it is measured on (loads: route,
concurrency and scenario, see run.LOADS), and how to start, stop and reach it in the
VPS. The kinds below cover the usual cases:

  AppCommand    a command run as a transient systemd unit (as the app's user, in its
                release, with its environment), reached on 127.0.0.1:PORT
  BehindNginx   the same on a unix socket, behind a server block of our Nginx
                (the stack's proxy settings, or the tutorials' proxy_params)
  WorkerClass   our gunicorn.conf.py with another worker class, behind our Nginx
  Apps          several of the above at once (their memory added up)
  NginxReturn200, TlsReturn200, MinimalNginx, Stack: see each

To measure another server, add one object to SERVERS: e.g.

    AppCommand(name="gunicorn-4sync", about="4 sync workers on TCP, no Nginx",
               color="#8c564b", port=8005,
               command="{venv}/bin/gunicorn --workers 4 --bind 127.0.0.1:{port} {app}:app"),

Everything else (the plan of runs, the chart, the smoke test) follows from the list.
The targets (targets.RATIOS) name the servers they compare.
"""

import ast
import shlex
from dataclasses import dataclass

from nginxconf import Directive, dump, find, find_all
from vps import NGINX_LOG, WORK

# What a server is measured on: (route, concurrency, scenario) loads, from run.LOADS
# (which also says what each scenario is). /page: a page as real apps serve it, a
# query and a template (app/hello.py).
HOL = ("/page", 95, "hol")
APP_LOADS = (("/", 50, "normal"), ("/page", 50, "normal"), ("/page", 95, "normal"), HOL,
             ("/", 200, "normal"), ("/slow?ms=100", 50, "normal"), ("/slow?ms=100", 200, "normal"))
SLOWLORIS = ("/", 50, "slowloris")
PACED = ("/", 4, "paced")
H2 = ("/", 50, "h2")
MEMORY = ("/page", 50, "memory")
STATIC_LOADS = (("/", 50, "normal"), ("/", 200, "normal"))  # `return 200` answers every path alike
CLASS_LOADS = (("/", 50, "normal"), ("/slow?ms=100", 200, "normal"))


@dataclass(frozen=True, kw_only=True)
class Server:
    name: str
    about: str
    color: str | None = None
    loads: tuple = APP_LOADS
    port: int | None = None

    def nginx_config(self, vps):
        """Server blocks this server needs in our Nginx (in zz-bench.conf), or ""."""
        return ""

    def start(self, vps):
        """Start it (servers in our Nginx are there since the setup's reload), and
        wait until it answers."""
        vps.wait_ready(self.url(vps) + "/", self.name)

    def stop(self, vps):
        """Stop it; also when it is not running (cleaning up after a failed run)."""

    def url(self, vps):
        return f"http://127.0.0.1:{self.port}"

    def unit(self, vps):
        """The systemd unit whose processes serve the app (their memory), or None."""
        return None

    def units(self, vps):
        """Every unit whose processes serve it (their memory is added up)."""
        unit = self.unit(vps)
        return [unit] if unit else []

    def beside(self, vps):
        """URLs loaded beside the measured one, alike, in the memory scenario."""
        return []


@dataclass(frozen=True, kw_only=True)
class Stack(Server):
    """What the roles provisioned, as it runs: nothing to start or stop."""

    def start(self, vps):
        vps.wait_ready(self.url(vps) + "/healthz", self.name)

    def url(self, vps):
        return vps.stack_url

    def unit(self, vps):
        return vps.service


@dataclass(frozen=True, kw_only=True)
class AppCommand(Server):
    """command (a str.format template: {venv}, {app}, {port}, {gunicorn_conf},
    {socket}) run as the transient unit bench-NAME. systemd="app": as the app's
    user, in its release, with its environment; "service": with every setting of
    the app's own service (its sandbox too)."""
    command: str
    systemd: str = "app"

    def argv(self, vps):
        return shlex.split(self.command.format(
            venv=vps.venv, app=vps.app, port=self.port, gunicorn_conf=vps.gunicorn_conf,
            socket=self.socket))

    def unit_properties(self, vps):
        return vps.service_properties() if self.systemd == "service" else vps.app_unit_properties()

    def start(self, vps):
        vps.start_unit(self.name, self.argv(vps), self.unit_properties(vps))
        super().start(vps)

    def stop(self, vps):
        vps.stop_unit(self.name)

    def unit(self, vps):
        return f"bench-{self.name}.service"

    @property
    def socket(self):
        return f"/run/bench-{self.name}/app.sock"


@dataclass(frozen=True, kw_only=True)
class BehindNginx(AppCommand):
    """command listens on {socket}, which Nginx's group may connect to (use
    `--umask 007`), behind a server block of our Nginx on 127.0.0.1:PORT. proxy:
    "stack", the upstream and `location /` of the app's vhost as the nginx role
    rendered it (see stack_proxy); "tutorial", `include proxy_params` and a
    proxy_pass to the socket, with no upstream keepalive."""
    proxy: str = "stack"

    def unit_properties(self, vps):
        return [*vps.app_unit_properties(group="www-data"), f"RuntimeDirectory=bench-{self.name}"]

    def nginx_config(self, vps):
        if self.proxy == "tutorial":
            upstream = []
            location = Directive("location", ["/"], [
                Directive("include", ["proxy_params"]),
                Directive("proxy_pass", [f"http://unix:{self.socket}"])])
        else:
            upstream, location = stack_blocks(vps, f"bench_{self.name.replace('-', '_')}", self.socket)
            upstream = [upstream]
        server = Directive("server", [], [
            Directive("listen", [f"127.0.0.1:{self.port}"]),
            Directive("access_log", [NGINX_LOG, "main"]),
            location])
        return f"# {self.name}: {self.about}\n{dump([*upstream, server])}\n"


@dataclass(frozen=True, kw_only=True)
class WorkerClass(BehindNginx):
    """Our gunicorn.conf.py with another worker class (gthread: with `threads`
    threads per worker), behind our Nginx with the stack's proxy settings. The
    worker classes are compared with each other, in a section of their own of
    summary.md, not in the chart (no color). workers: another worker count than the
    stack's."""
    worker_class: str
    threads: int | None = None
    workers: int | None = None
    loads: tuple = CLASS_LOADS
    command: str = ""

    def argv(self, vps):
        threads = ["--threads", str(self.threads)] if self.threads else []
        workers = ["--workers", str(self.workers)] if self.workers else []
        return [f"{vps.venv}/bin/gunicorn", "--config", self.conf_path, "--worker-class",
                self.worker_class, *threads, *workers, "--bind", f"unix:{self.socket}", "--umask", "007",
                "--no-control-socket"]

    @property
    def conf_path(self):
        return f"{WORK}/gunicorn-{self.worker_class}.conf.py"

    def start(self, vps):
        conf = vps.read(vps.gunicorn_conf)
        if self.worker_class != "gevent":
            conf = without_gevent_patching(conf)
        vps.put(self.conf_path, conf)
        super().start(vps)


@dataclass(frozen=True, kw_only=True)
class Apps(Server):
    """Several apps at once (servers of the kinds above, each with its units and
    server block): in the memory scenario the first is measured while the others get
    the same load beside it, and their memory is added up."""
    apps: tuple
    loads: tuple = (MEMORY,)

    def nginx_config(self, vps):
        return "".join(app.nginx_config(vps) for app in self.apps)

    def start(self, vps):
        for app in self.apps:
            app.start(vps)

    def stop(self, vps):
        for app in self.apps:
            app.stop(vps)

    def url(self, vps):
        return self.apps[0].url(vps)

    def units(self, vps):
        return [unit for app in self.apps for unit in app.units(vps)]

    def beside(self, vps):
        return [app.url(vps) for app in self.apps[1:]]


@dataclass(frozen=True, kw_only=True)
class NginxReturn200(Server):
    """`return 200` from a server block of our Nginx, through our nginx.conf."""
    loads: tuple = STATIC_LOADS

    def nginx_config(self, vps):
        server = Directive("server", [], [
            Directive("listen", [f"127.0.0.1:{self.port}"]),
            Directive("access_log", [NGINX_LOG, "main"]),
            Directive("location", ["/"], [Directive("return", ["200"])])])
        return f"# {self.name}: {self.about}\n{dump([server])}\n"


@dataclass(frozen=True, kw_only=True)
class TlsReturn200(Server):
    """`return 200` in a copy of the stack's HTTPS server block (its TLS, HTTP/2 and
    headers, every location replaced), on 127.0.0.1:PORT: what Nginx spends on a
    request it does not proxy, next to the stack's proxied one."""
    loads: tuple = (("/", 50, "normal"), H2, PACED)

    def nginx_config(self, vps):
        tls = next(server for server in find_all(vps.read_nginx(vps.vhost), "server")
                   if any("ssl" in d.args for d in server.block if d.name == "listen"))
        http2 = any("http2" in d.args for d in tls.block if d.name == "listen")
        server = Directive("server", [], [
            Directive("listen", [f"127.0.0.1:{self.port}", "ssl", *(["http2"] if http2 else [])]),
            *[d for d in tls.block if d.name not in ("listen", "location")],
            # At tens of thousands of requests/s a connection would reach Nginx's
            # default 1,000 requests in a fraction of a second and close (h2load then
            # stops using it; wrk opens another, a TLS handshake): the proxied runs
            # never get near it, so neither does this one.
            Directive("keepalive_requests", ["100000000"]),
            Directive("location", ["/"], [Directive("return", ["200"])])])
        return f"# {self.name}: {self.about}\n{dump([server])}\n"

    def url(self, vps):
        return f"https://127.0.0.1:{self.port}"


@dataclass(frozen=True, kw_only=True)
class MinimalNginx(Server):
    """A second Nginx with nothing but what `return 200` needs (it logs, as Nginx
    does by default), and as many workers as ours: the comparison is of everything
    else our nginx.conf sets. (How many workers is a choice of its own: see the
    README's Performance section.)"""
    loads: tuple = STATIC_LOADS

    @property
    def conf_path(self):
        return f"{WORK}/{self.name}.conf"

    def config(self, vps):
        ours = find(vps.read_nginx("/etc/nginx/nginx.conf"), "worker_processes")
        return dump([
            Directive("pid", [f"{WORK}/{self.name}.pid"]),
            Directive("error_log", [f"{WORK}/{self.name}.error.log"]),
            Directive("worker_processes", ours.args if ours else ["auto"]),
            Directive("events", [], []),
            Directive("http", [], [
                Directive("access_log", [NGINX_LOG]),
                Directive("server", [], [
                    Directive("listen", [f"127.0.0.1:{self.port}"]),
                    Directive("location", ["/"], [Directive("return", ["200"])])])])]) + "\n"

    def start(self, vps):
        vps.put(self.conf_path, self.config(vps))
        vps.sh(f"nginx -q -t -c {self.conf_path} && {vps.on_server_cpus(f'nginx -c {self.conf_path}')}")
        super().start(vps)

    def stop(self, vps):
        pid = f"{WORK}/{self.name}.pid"
        vps.sh(f"[ ! -f {pid} ] || nginx -c {self.conf_path} -s quit; "
               f"for i in $(seq 1 50); do [ -f {pid} ] || break; sleep 0.1; done", check=False)


# --- the stack's proxy settings, from the app's vhost as rendered on the VPS ---------

def stack_proxy(vps):
    """The vhost's `location /` that proxies to the app, and the upstream it names."""
    conf = vps.read_nginx(vps.vhost)
    location = next((loc for loc in find_all(conf, "server", "location /")
                     if find(loc.block, "proxy_pass")), None)
    if location is None:
        raise RuntimeError(f"no `location /` with a proxy_pass in {vps.vhost}")
    target = find(location.block, "proxy_pass").args[0].removeprefix("http://")
    upstream = find(conf, f"upstream {target}")
    if upstream is None:
        raise RuntimeError(f"no `upstream {target}` in {vps.vhost}")
    return location, upstream


def stack_blocks(vps, name, socket):
    """The vhost's upstream (its keepalive, ...) named name, with socket as its only
    server; and its `location /`, proxying to that upstream, less the per-client
    abuse limits (limit_req, limit_conn: not proxy settings, and the load comes from
    one client)."""
    location, upstream = stack_proxy(vps)
    servers = [Directive("server", [f"unix:{socket}"])]
    upstream = Directive("upstream", [name],
                         servers + [d for d in upstream.block if d.name != "server"])
    block = [Directive("proxy_pass", [f"http://{name}"]) if d.name == "proxy_pass" else d
             for d in location.block if d.name not in ("limit_req", "limit_conn")]
    return upstream, Directive("location", ["/"], block)


def without_gevent_patching(conf):
    """gunicorn.conf.py without gevent's patching (`from gevent import monkey`,
    `monkey.patch_all()`), for a worker class other than gevent."""
    tree = ast.parse(conf)
    tree.body = [node for node in tree.body if not patches_gevent(node)]
    return ast.unparse(tree) + "\n"


def patches_gevent(node):
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "gevent"
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "gevent" for alias in node.names)
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "patch_all")


# --- the registry --------------------------------------------------------------------

SERVERS = [
    AppCommand(
        name="flask-dev", about="`flask run`, Flask's threaded development server",
        color="#9e9e9e", port=5000,
        command="{venv}/bin/flask --app {app} run --host 127.0.0.1 --port {port} --with-threads"),
    AppCommand(
        name="gunicorn-direct",
        about="Gunicorn with our gunicorn.conf.py and systemd settings, on TCP, no Nginx",
        color="#1f77b4", port=8001, loads=(*APP_LOADS, SLOWLORIS, PACED), systemd="service",
        # (Without the control socket, which would clash with the app's.)
        command="{venv}/bin/gunicorn --config {gunicorn_conf} --bind 127.0.0.1:{port} "
                "--no-control-socket"),
    Stack(
        name="stack", about="what the roles provisioned: Nginx -> unix socket -> Gunicorn",
        color="#2ca02c", loads=(*APP_LOADS, SLOWLORIS, PACED, H2, MEMORY)),
    BehindNginx(
        name="recipe",
        about="the tutorial setup: `gunicorn --workers 3` (sync) on a unix socket behind "
              "Nginx, with no upstream keepalive",
        color="#ff7f0e", port=8082, loads=(*APP_LOADS, SLOWLORIS), proxy="tutorial",
        command="{venv}/bin/gunicorn --workers 3 --bind unix:{socket} --umask 007 "
                "--no-control-socket {app}:app"),
    NginxReturn200(
        name="nginx-static", about="`return 200` from our Nginx, through our nginx.conf: the ceiling",
        color="#17becf", port=8083),
    MinimalNginx(
        name="nginx-minimal",
        about="the same `return 200` from a second Nginx with a minimal config and as many "
              "workers as ours",
        color="#bcbd22", port=8084),
    TlsReturn200(
        name="stack-return200",
        about="`return 200` in a copy of the stack's HTTPS server block: Nginx's cost without the proxying",
        port=8443),
    WorkerClass(name="class-gevent", about="our gunicorn.conf.py, gevent workers",
                worker_class="gevent", port=8091),
    WorkerClass(name="class-gthread", about="our gunicorn.conf.py, gthread workers, 40 threads each "
                "(flaskapp_threads' default)", worker_class="gthread", threads=40, port=8092),
    WorkerClass(name="class-sync", about="our gunicorn.conf.py, sync workers",
                worker_class="sync", port=8093),
    # flaskapp_workers: memory against throughput (gevent, as the stack).
    *[WorkerClass(name=f"workers-{n}", about=f"our gunicorn.conf.py with {n} gevent workers",
                  worker_class="gevent", workers=n, port=8100 + n, loads=(MEMORY,)) for n in (1, 2, 3, 5)],
    # The demo's defaults on a 1-CPU VPS (flaskapp_workers: 2 x 1 + 1), with two apps.
    Apps(name="two-apps-1cpu", about="two apps as the roles size them for a 1-CPU VPS (3 gevent "
         "workers each, our gunicorn.conf.py, behind our Nginx), both loaded at once",
         apps=tuple(WorkerClass(name=f"app{n}-1cpu", about=f"app {n} of two-apps-1cpu", worker_class="gevent",
                                workers=3, port=8110 + n, loads=(MEMORY,)) for n in (1, 2))),
]


def by_name(name):
    return next(server for server in SERVERS if server.name == name)
