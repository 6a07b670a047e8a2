"""The repository as another project uses it: the collection flaskvps.stack built
with ansible-galaxy, installed offline into an empty project beside only the
collections galaxy.yml declares, and its roles and playbooks run by FQCN against
a fresh instance of its own (rel-collection; the other files' tests run beside it
on rel-debian13): the installed roles set it up with the scenario's app and one
more, then the collection's site playbook removes that one."""

import os
import re
import shutil
import subprocess
import tarfile

import ansible_collections
import pytest
import yaml

# The other tests run on rel-debian13; this file has a host of its own.
testinfra_hosts = ["ansible://rel-collection"]

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
# What the collection may ship; the rest of the repository is the development kit.
SHIPPED = {"MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.md", "meta", "playbooks", "plugins", "roles", "docs"}

# The README's example: the roles by FQCN, in the order site.yml runs them.
PLAYBOOK = """\
- name: Serve Flask apps with the installed collection
  hosts: webservers
  become: true
  roles:
    - role: flaskvps.stack.firewall
    - role: flaskvps.stack.flaskapp
    - role: flaskvps.stack.nginx
      vars:
        nginx_vhosts: "{{ flaskapp_nginx_vhosts }}"
"""


def galaxy():
    with open(os.path.join(PROJECT, "galaxy.yml")) as f:
        return yaml.safe_load(f)


def copy_collection(name, dest, ignore=()):
    """Copy an installed collection (the venv's, from requirements.txt) to dest/."""
    namespace, collection = name.split(".")
    source = os.path.join(ansible_collections.__path__[0], namespace, collection)
    shutil.copytree(source, os.path.join(dest, "ansible_collections", namespace, collection),
                    ignore=shutil.ignore_patterns("__pycache__", *ignore))


def ansible(project, *argv, collections="collections:harness"):
    """Run an ansible command in the project as its own: no setting of the
    repository's or Molecule's, and no collection but those in the project."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=os.path.join(project, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false")
    return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    result = subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(out), PROJECT],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    meta = galaxy()
    return out / f"{meta['namespace']}-{meta['name']}-{meta['version']}.tar.gz"


@pytest.fixture(scope="module")
def project(tmp_path_factory, tarball):
    """An empty project with the collection installed the way a user does, offline:
    ansible-galaxy finds the declared dependencies already there, and fails if one is
    missing or outside its range."""
    project = tmp_path_factory.mktemp("project")
    (project / "ansible.cfg").write_text("[defaults]\nroles_path = roles\ninterpreter_python = auto_silent\n")
    (project / "playbook.yml").write_text(PLAYBOOK)
    for name in galaxy()["dependencies"]:
        copy_collection(name, project / "collections")
    # Not a dependency: the connection plugin Molecule's inventory names, without the
    # modules, so that a role using one fails here.
    copy_collection("community.docker", project / "harness", ignore=("modules", "action", "inventory"))
    result = ansible(project, "ansible-galaxy", "collection", "install", "--offline", "-p", "collections", str(tarball))
    assert result.returncode == 0, result.stdout + result.stderr
    return project


def extra_vars(project, *apps):
    """The scenario's settings with more apps after its own."""
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    with open(os.path.join(inventory, "group_vars", "webservers")) as f:
        settings = yaml.safe_load(f)
    settings["flaskapp_apps"] = settings["flaskapp_apps"] + list(apps)
    path = project / "vars.yml"
    path.write_text(yaml.safe_dump(settings))
    return f"@{path}"


def play(host, project, playbook, *extra):
    return ansible(project, "ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                   "--limit", host.backend.host, playbook, *extra)


def status(host, name):
    """The HTTP status of /healthz through Nginx for that host name (0: refused)."""
    result = host.run("curl -sk -o /dev/null -m 10 -w %%{http_code} -H %s https://127.0.0.1/healthz",
                      f"Host: {name}")
    return int(result.stdout or 0)


def test_the_collection_holds_only_roles_playbooks_plugins_and_docs(tarball):
    with tarfile.open(tarball) as tar:
        top = {member.name.split("/")[0] for member in tar.getmembers()}
    assert top <= SHIPPED, f"not part of the collection: {sorted(top - SHIPPED)}"
    assert {"roles", "playbooks", "plugins", "meta"} <= top


def test_roles_and_playbooks_by_fqcn_pass_the_syntax_check(project):
    result = ansible(project, "ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--syntax-check",
                     "playbook.yml", "flaskvps.stack.site", "flaskvps.stack.deploy", "flaskvps.stack.rollback",
                     "flaskvps.stack.run")
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_the_declared_dependencies_the_roles_fail(host, project, tmp_path):
    # Only flaskvps.stack in the collections path (and the playbook away from the
    # project's collections/, which Ansible also searches): a dry run stops at the first
    # plugin of another collection, as it would at one of a dependency galaxy.yml does
    # not name.
    bare = tmp_path / "ansible_collections" / "flaskvps"
    bare.mkdir(parents=True)
    (bare / "stack").symlink_to(project / "collections" / "ansible_collections" / "flaskvps" / "stack")
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    result = ansible(project, "ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                     "--limit", host.backend.host, "--check", str(tmp_path / "playbook.yml"),
                     collections=f"{tmp_path}:harness")
    assert result.returncode != 0
    missing = re.search(r"(?:No filter named|couldn't resolve module/action) '(\w+\.\w+)\.", result.stdout)
    assert missing and missing[1] in galaxy()["dependencies"], result.stdout[-4000:]


def test_the_installed_roles_deploy_an_app_and_the_site_playbook_removes_it(host, project):
    collected = {"name": "collected", "src": os.path.join(PROJECT, "app"), "entrypoint": "hello:app",
                 "pre_start": "flask --app hello init-db", "server_names": ["collected.test"]}
    with_collected = extra_vars(project, collected)

    result = play(host, project, "playbook.yml", "-e", with_collected)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # The installed roles ran (the repository's are not on any path here).
    assert "TASK [flaskvps.stack.flaskapp : " in result.stdout
    assert "changed=0" not in result.stdout
    assert status(host, "collected.test") == 200
    assert status(host, "localhost") == 200

    # Without it: the app is removed, the scenario's own app still serves.
    result = play(host, project, "flaskvps.stack.site")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert not host.user("collected").exists
    assert host.run("grep -rq collected.test /etc/nginx").rc == 1  # no vhost names it
    assert status(host, "localhost") == 200
