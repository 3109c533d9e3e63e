"""argv builders: pure, table-driven, no binaries needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagepipe.exec import cmdline
from imagepipe.host.profile import NS_FILE, HostProfile

PLAIN = HostProfile()  # cgroup v2, no rlimit trouble
QUIRKY = HostProfile(hybrid_cgroups=True, nofile_hard=20000, nproc_hard=96365)


@pytest.mark.parametrize(("profile", "kw", "expected"), [
    (PLAIN, {}, ["buildah", "bud", "--format", "docker", "--force-rm", "--layers=true", "--pull=never", "-t", "img:1",
                 "-f", "Containerfile", "ctx"]),
    (QUIRKY, {}, ["buildah", "bud", "--format", "docker", "--force-rm", "--isolation", "chroot", "--layers=true",
                  "--pull=never", "-t", "img:1", "-f", "Containerfile", "ctx"]),
    (PLAIN, {"ca_bundle": Path("/ca.crt"), "wheelhouse": Path("/w"), "timestamp": 0, "layers": False},
     ["buildah", "bud", "--format", "docker", "--force-rm", "--layers=false", "--pull=never",
      "-v", "/ca.crt:/run/host-ca.crt:ro",
      "-v", "/w:/run/wheels:ro", "--timestamp", "0", "-t", "img:1", "-f", "Containerfile", "ctx"]),
])
def test_buildah_bud(profile, kw, expected):
    assert cmdline.buildah_bud(profile, containerfile=Path("Containerfile"), context=Path("ctx"),
                                tags=["img:1"], **kw) == expected


@pytest.mark.parametrize(("dest", "kw", "expected"), [
    ("127.0.0.1:5000/r:t", {}, ["buildah", "push", "--tls-verify=false", "--digestfile", "/d",
                                "img", "docker://127.0.0.1:5000/r:t"]),
    ("registry.example.com/r:t", {"auth": cmdline.ToolAuth(Path("/a.json"))},
     ["buildah", "push", "--authfile", "/a.json", "--digestfile", "/d", "img", "docker://registry.example.com/r:t"]),
    # a TLS registry on loopback is verified when the run's access says it speaks TLS
    ("127.0.0.1:5443/r:t", {"auth": cmdline.ToolAuth(None, tls_verify=True)},
     ["buildah", "push", "--digestfile", "/d", "img", "docker://127.0.0.1:5443/r:t"]),
    ("registry.example.com/r:t", {"auth": cmdline.ToolAuth(None, tls_verify=False)},
     ["buildah", "push", "--tls-verify=false", "--digestfile", "/d", "img", "docker://registry.example.com/r:t"]),
])
def test_buildah_push(dest, kw, expected):
    assert cmdline.buildah_push("img", dest, digestfile=Path("/d"), **kw) == expected


def test_podman_enters_the_namespace_only_on_quirky_hosts():
    assert cmdline.podman(PLAIN, "ps") == ["podman", "ps"]
    assert cmdline.podman(QUIRKY, "ps") == ["nsenter", f"--mount={NS_FILE}", "--", "podman", "ps"]


def test_podman_run_flags():
    plain = cmdline.podman_run(PLAIN, "img", name="n", detach=True, env={"A": "1"}, publish=["127.0.0.1:1:8000"])
    assert plain == ["podman", "run", "-d", "--name", "n", "-e", "A=1", "-p", "127.0.0.1:1:8000", "img"]
    quirky = cmdline.podman_run(QUIRKY, "img", remove=True, read_only=True, tmpfs=["/tmp"], cap_drop_all=True,
                                 command=["whoami"])
    assert quirky == ["nsenter", f"--mount={NS_FILE}", "--", "podman", "run", "--rm", "--cgroups=disabled",
                      "--ulimit", "nofile=16384:16384", "--ulimit", "nproc=16384:16384", "--read-only",
                      "--tmpfs", "/tmp", "--cap-drop", "ALL", "img", "whoami"]
    # the contract's `docker run -e …` passes nothing else: nor do we, the host's proxy variables included
    exact = cmdline.podman_run(PLAIN, "img", env={"A": "1"}, host_proxy=False)
    assert exact == ["podman", "run", "-e", "A=1", "--http-proxy=false", "img"]


@pytest.mark.parametrize(("ref", "local"), [
    ("127.0.0.1:5000/x", True), ("localhost:5000/x@sha256:ab", True), ("localhost/x", True),
    ("registry.example.com/x", False), ("10.0.0.1:5000/x", False),
])
def test_registry_is_local(ref, local):
    assert cmdline.registry_is_local(ref) is local


def test_skopeo_copy_gives_the_auth_file_to_both_sides_and_never_a_password():
    argv = cmdline.skopeo_copy("reg.example.com/r@sha256:ab", "reg.example.com/r:latest",
                                auth=cmdline.ToolAuth(Path("/run/a.json")))
    assert argv == ["skopeo", "copy", "--preserve-digests", "--src-authfile", "/run/a.json", "--dest-authfile",
                    "/run/a.json", "docker://reg.example.com/r@sha256:ab", "docker://reg.example.com/r:latest"]
    assert not any("creds" in a for a in argv)


def test_skopeo_copy_preserves_digests():
    assert cmdline.skopeo_copy("127.0.0.1:5000/r@sha256:ab", "127.0.0.1:5000/r:latest") == [
        "skopeo", "copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
        "docker://127.0.0.1:5000/r@sha256:ab", "docker://127.0.0.1:5000/r:latest"]


def test_registry_config_has_its_own_root(tmp_path):
    text = cmdline.registry_config(addr="127.0.0.1:5001", root=tmp_path)
    assert f"rootdirectory: {tmp_path}" in text and "addr: 127.0.0.1:5001" in text


@pytest.mark.parametrize(("argv", "expected"), [
    (cmdline.git(Path("/r"), "rev-parse", "HEAD"), ["git", "-C", "/r", "rev-parse", "HEAD"]),
    (cmdline.gpg("--import", "k.pub"), ["gpg", "--batch", "--no-tty", "--import", "k.pub"]),
    (cmdline.hadolint(Path("Containerfile"), Path("h.yaml")),
     ["hadolint", "--no-color", "--config", "h.yaml", "Containerfile"]),
    (cmdline.initdb(Path("/pg/bin"), Path("/d"), superuser="su", pwfile=Path("/pw")),
     ["/pg/bin/initdb", "-D", "/d", "-U", "su", "-A", "scram-sha-256", "--pwfile=/pw", "-E", "UTF8", "--no-sync"]),
    (cmdline.pg_ctl_start(Path("/b"), Path("/d"), port=5433, socket_dir=Path("/s"), listen="127.0.0.1",
                           log=Path("/l")),
     ["/b/pg_ctl", "-D", "/d", "-o", "-p 5433 -k /s -c listen_addresses='127.0.0.1' -c fsync=off", "-l", "/l",
      "-w", "-t", "60", "start"]),
    (cmdline.pg_ctl_stop(Path("/b"), Path("/d")), ["/b/pg_ctl", "-D", "/d", "-m", "fast", "-w", "stop"]),
    (cmdline.psql(Path("/b"), port=5433, user="su", sql="SELECT 1"),
     ["/b/psql", "-h", "127.0.0.1", "-p", "5433", "-U", "su", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-tA",
      "-c", "SELECT 1"]),
    (cmdline.psql(Path("/b"), dsn="postgresql://x", sql="SELECT 1"),
     ["/b/psql", "postgresql://x", "-v", "ON_ERROR_STOP=1", "-q", "-tA", "-c", "SELECT 1"]),
    (cmdline.debootstrap(Path("/root"), "http://m"), ["debootstrap", "--variant=minbase", "bookworm", "/root",
                                                      "http://m"]),
    (cmdline.chroot(Path("/root"), "apt-get", "clean"), ["chroot", "/root", "apt-get", "clean"]),
    (cmdline.tar_create(Path("/root"), Path("/t.tar")), ["tar", "--numeric-owner", "-C", "/root", "-cf", "/t.tar",
                                                         "."]),
    (cmdline.dpkg_deb_extract(Path("a.deb"), Path("/x")), ["dpkg-deb", "-x", "a.deb", "/x"]),
    (cmdline.unshare_mount(Path("/ns"), "true"), ["unshare", "--mount=/ns", "--propagation", "unchanged", "sh", "-c",
                                                   "true"]),
    (cmdline.lighttpd(Path("/c.conf")), ["lighttpd", "-f", "/c.conf"]),
    (cmdline.nat_rules(), ["iptables-save", "-t", "nat"]),
    (cmdline.nat_delete("POSTROUTING", ["-s", "10.244.0.5/32", "-j", "CNI-ab"]),
     ["iptables", "-t", "nat", "-D", "POSTROUTING", "-s", "10.244.0.5/32", "-j", "CNI-ab"]),
    (cmdline.nat_flush_chain("CNI-ab"), ["iptables", "-t", "nat", "-F", "CNI-ab"]),
    (cmdline.nat_delete_chain("CNI-ab"), ["iptables", "-t", "nat", "-X", "CNI-ab"]),
    (cmdline.ipv4_addresses(), ["ip", "-4", "-o", "addr"]),
    (cmdline.link_delete("cni-x"), ["ip", "link", "del", "cni-x"]),
    (cmdline.bridge_add("ipk939e5c", cmdline.bridge_mac("939e5c")),
     ["ip", "link", "add", "name", "ipk939e5c", "address", "02:69:70:93:9e:5c", "type", "bridge"]),
    (cmdline.umount(Path("/n/mnt")), ["umount", "/n/mnt"]),
    (cmdline.wrk("http://h/x", concurrency=16, seconds=10, headers={"Authorization": "Bearer t"}),
     ["wrk", "-t2", "-c16", "-d10s", "--latency", "-H", "Authorization: Bearer t", "http://h/x"]),
    (cmdline.buildah_from("img:1", name="imagepipe-r-1"),
     ["buildah", "from", "--pull=false", "--quiet", "--name", "imagepipe-r-1", "img:1"]),
    (cmdline.buildah_rmi(prune=True), ["buildah", "rmi", "--prune"]),
    (cmdline.buildah_rmi("a", "b"), ["buildah", "rmi", "-f", "a", "b"]),
    (cmdline.skopeo_to_dir("127.0.0.1:5000/r@sha256:x", Path("/l")),
     ["skopeo", "copy", "-q", "--src-tls-verify=false", "docker://127.0.0.1:5000/r@sha256:x", "dir:/l"]),
    (cmdline.skopeo_to_dir("containers-storage:img:1", Path("/l")),
     ["skopeo", "copy", "-q", "containers-storage:img:1", "dir:/l"]),
    (cmdline.skopeo_dir_to_storage(Path("/l"), "img:1"), ["skopeo", "copy", "-q", "dir:/l",
                                                          "containers-storage:img:1"]),
    (cmdline.podman_inspect(PLAIN, "image", "img:1"), ["podman", "image", "inspect", "img:1"]),
])
def test_host_and_storage_argv(argv, expected):
    assert argv == expected


def test_pip_wheel_requires_hashes_when_asked():
    argv = cmdline.pip_wheel(Path("r.txt"), Path("/w"), require_hashes=True)
    assert argv[1:] == ["-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--require-hashes", "-r", "r.txt",
                        "-w", "/w"]
    assert "--require-hashes" not in cmdline.pip_wheel(Path("r.txt"), Path("/w"), require_hashes=False)


@pytest.mark.parametrize(("argv", "expected"), [
    (cmdline.podman_ps_labelled(PLAIN, "io.imagepipe.run=r1"),
     ["podman", "ps", "-a", "-q", "--filter", "label=io.imagepipe.run=r1"]),
    (cmdline.podman_rm(PLAIN, "a", "b"), ["podman", "rm", "-f", "-t", "0", "a", "b"]),
    (cmdline.podman_rm(PLAIN, "a", grace=2), ["podman", "rm", "-f", "-t", "2", "a"]),
    (cmdline.podman_image_exists(PLAIN, "img:1"), ["podman", "image", "exists", "img:1"]),
    (cmdline.podman_tag(PLAIN, "a:1", "b:2"), ["podman", "tag", "a:1", "b:2"]),
    (cmdline.podman_import(PLAIN, Path("/r.tar"), "img:1", changes=["ENV A=1", "CMD [\"x\"]"]),
     ["podman", "import", "--change", "ENV A=1", "--change", "CMD [\"x\"]", "/r.tar", "img:1"]),
    (cmdline.podman_history(PLAIN, "img:1"), ["podman", "history", "--no-trunc", "--format", "{{.CreatedBy}}",
                                               "img:1"]),
    (cmdline.podman_logs(PLAIN, "c"), ["podman", "logs", "c"]),
    (cmdline.podman_exec(PLAIN, "c", "psql", "-c", "SELECT 1"), ["podman", "exec", "c", "psql", "-c", "SELECT 1"]),
    (cmdline.podman_healthcheck_run(QUIRKY, "c"), ["nsenter", f"--mount={NS_FILE}", "--", "podman", "healthcheck",
                                                    "run", "c"]),
])
def test_podman_verbs(argv, expected):
    assert argv == expected


IN_POD = HostProfile(in_pod=True)


def test_inside_a_pod_containers_share_its_network_and_get_no_cgroups():
    argv = cmdline.podman_run(IN_POD, "img", name="svc", detach=True, publish=["127.0.0.1:5555:8000"],
                               network="none", env={"A": "1"})
    assert argv == ["podman", "run", "-d", "--name", "svc", "--cgroups=disabled", "-e", "A=1", "--network", "host",
                    "img"]


def test_inside_a_pod_verify_reaches_its_stand_ins_on_the_shared_loopback():
    from imagepipe.checks.types import container_host
    from imagepipe.services import containernet

    assert container_host(IN_POD) == "127.0.0.1" and container_host(PLAIN) == "host.containers.internal"
    assert containernet.bridge(IN_POD, "img") == ("127.0.0.1", "127.0.0.1/32")  # no podman call inside a pod


def test_podman_run_gives_a_healthcheck_on_the_command_line_in_exec_form():
    health = cmdline.HealthFlags(["python", "/app/app/healthcheck.py"], 15, 3, 0, 3)
    argv = cmdline.podman_run(PLAIN, "img", name="idle", health=health, command=["sleep"])
    assert argv == ["podman", "run", "--name", "idle", "--health-cmd", '["python", "/app/app/healthcheck.py"]',
                    "--health-interval", "15s", "--health-timeout", "3s", "--health-start-period", "0s",
                    "--health-retries", "3", "img", "sleep"]


def test_the_idle_container_keeps_the_images_healthcheck_but_starts_counting_at_once():
    from imagepipe.checks.runtimechecks import idle_health_flags

    config = {"Healthcheck": {"Test": ["CMD", "python", "/app/app/healthcheck.py"], "Interval": 15_000_000_000,
                              "Timeout": 3_000_000_000, "StartPeriod": 5_000_000_000, "Retries": 4}}
    assert idle_health_flags(config) == cmdline.HealthFlags(["python", "/app/app/healthcheck.py"], 15, 3, 0, 4)
    shell = {"Healthcheck": {"Test": ["CMD-SHELL", "curl -f localhost"]}}  # Docker's defaults for the rest
    assert idle_health_flags(shell) == cmdline.HealthFlags(["/bin/sh", "-c", "curl -f localhost"], 30, 30, 0, 3)
    assert idle_health_flags({}) is None
    assert idle_health_flags({"Healthcheck": {"Test": ["NONE"]}}) is None


def test_under_emulation_the_healthchecks_timeout_is_scaled_and_natively_the_image_keeps_its_own():
    from imagepipe.checks.runtimechecks import idle_health_flags, serving_health_flags

    config = {"Healthcheck": {"Test": ["CMD", "python", "/app/app/healthcheck.py"], "Interval": 15_000_000_000,
                              "Timeout": 3_000_000_000, "StartPeriod": 5_000_000_000, "Retries": 3}}
    assert serving_health_flags(config, slowdown=1) is None
    assert serving_health_flags(config, slowdown=10) == cmdline.HealthFlags(
        ["python", "/app/app/healthcheck.py"], 15, 30, 5, 3)
    assert idle_health_flags(config, slowdown=10) == cmdline.HealthFlags(
        ["python", "/app/app/healthcheck.py"], 15, 30, 0, 3)
