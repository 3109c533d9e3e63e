"""The local cluster's config files and argv, from values (no binaries), and the registries.conf reader."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import yaml

from imagepipe.cluster import configs
from imagepipe.exec import cmdline
from imagepipe.registry import hostconfig


def test_runc_wrapper_drops_limits_but_keeps_device_rules(tmp_path):
    wrapper = tmp_path / "runc"
    record = tmp_path / "argv"
    fake = tmp_path / "real-runc"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {record}\n")
    fake.chmod(0o755)
    wrapper.write_text(configs.runc_wrapper(str(fake)))
    wrapper.chmod(0o755)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"linux": {"resources": {
        "devices": [{"allow": False, "access": "rwm"}], "cpu": {"shares": 2}, "memory": {"limit": 1}}}}))
    subprocess.run([str(wrapper), "create", "--bundle", str(bundle), "ctr"], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert record.read_text().split() == ["create", "--bundle", str(bundle), "ctr"], "runc gets the same argv"


def test_containerd_config_is_toml_with_the_host_quirks():
    text = configs.containerd_config(root=Path("/c/root"), cni_conf_dir=Path("/c/net.d"), certs_d=Path("/c/certs.d"),
                                     runc=Path("/c/runc-wrapper"), sandbox_image="10.244.0.1:5000/imagepipe/pause:1")
    cri = tomllib.loads(text)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "10.244.0.1:5000/imagepipe/pause:1"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["BinaryName"] == "/c/runc-wrapper"
    assert cri["registry"]["config_path"] == "/c/certs.d"


def test_kubelet_config_leaves_the_host_alone():
    config = yaml.safe_load(configs.kubelet_config(ca=Path("ca"), cert=Path("c"), key=Path("k"), address="10.244.0.1",
                                                   port=10250, resolv_conf="/etc/resolv.conf"))
    assert config["protectKernelDefaults"] is True and config["makeIPTablesUtilChains"] is False
    assert config["cgroupsPerQOS"] is False and config["enforceNodeAllocatable"] == []
    assert config["readOnlyPort"] == 0 and config["authentication"]["anonymous"]["enabled"] is False


def test_cni_conf_masquerades_its_own_network_only():
    conf = json.loads(configs.cni_conf(network="imagepipe-x", bridge="ipkx", subnet="10.244.3.0/24",
                                       gateway="10.244.3.1", ipam_dir=Path("/c/ipam")))
    bridge = conf["plugins"][0]
    assert conf["name"] == "imagepipe-x" and bridge["bridge"] == "ipkx" and bridge["ipMasq"] is True
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24", "gateway": "10.244.3.1"}]]


def test_kubeconfig_with_a_token_or_a_certificate(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("PEM")
    token = yaml.safe_load(configs.kubeconfig(name="c", server="https://127.0.0.1:6443", ca=ca, user="u", token="t"))
    assert token["users"][0]["user"] == {"token": "t"} and token["current-context"] == "c"
    cert = yaml.safe_load(configs.kubeconfig(name="c", server="s", ca=ca, user="u", cert=Path("a.crt"),
                                             key=Path("a.key")))
    assert cert["users"][0]["user"] == {"client-certificate": "a.crt", "client-key": "a.key"}


def test_node_processes_enter_the_namespace_and_its_cgroup():
    argv = cmdline.kube_in_namespace(Path("/c/ns/mnt"), Path("/c/ns/cgroup"), ["containerd", "--config", "x"])
    assert argv[:4] == ["nsenter", "--mount=/c/ns/mnt", "--cgroup=/c/ns/cgroup", "--"]
    assert argv[-3:] == ["containerd", "--config", "x"]
    assert "/sys/fs/cgroup/cgroup.procs" in argv[6]


def test_insecure_registries_from_registries_conf_files(tmp_path):
    (tmp_path / "a.conf").write_text('[[registry]]\nlocation = "10.244.0.1:5000"\ninsecure = true\n'
                                     '[[registry]]\nlocation = "secure.example"\n')
    (tmp_path / "b.conf").write_text("not toml [")
    assert hostconfig.insecure_registries([tmp_path / "a.conf", tmp_path / "b.conf", tmp_path / "none"]) == {
        "10.244.0.1:5000"}


def test_kubelet_config_turns_in_place_resize_off_where_qos_cgroups_are_off():
    """kubelet v1.34 dies on a nil pointer in doPodResizeAction when cgroupsPerQOS is false (seen when a Job's
    pod was deleted a second after its container started; kubernetes/kubernetes#137999)."""
    config = yaml.safe_load(configs.kubelet_config(ca=Path("/ca"), cert=Path("/c"), key=Path("/k"),
                                                   address="10.0.0.1", port=10250, resolv_conf="/etc/resolv.conf"))
    assert config["cgroupsPerQOS"] is False
    assert config["featureGates"] == {"InPlacePodVerticalScaling": False}


def test_a_stopped_component_is_named_with_its_panic_line(tmp_path):
    from imagepipe.cluster.local import LocalCluster

    local = LocalCluster(tmp_path)
    local.logs.mkdir(parents=True)
    local.pids.mkdir()
    (local.logs / "kubelet.log").write_text(
        'E1202 04:33:34.797015   22182 kuberuntime_manager.go:639] "Missing actuated resource record"\n'
        "panic: runtime error: invalid memory address or nil pointer dereference [recovered, repanicked]\n"
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x1f5c8e0]\n")
    (local.logs / "etcd.log").write_text("E1202 04:33:09.727131 1 x.go:1] \"lost the lease\"\n")
    stopped = local.stopped()  # no pid files: nothing runs
    assert stopped[0] == (f"kubelet exited (panic: runtime error: invalid memory address or nil pointer dereference "
                          f"[recovered, repanicked]; see {local.logs / 'kubelet.log'})")
    etcd_log = local.logs / "etcd.log"
    assert stopped[-1] == f'etcd exited (E1202 04:33:09.727131 1 x.go:1] "lost the lease"; see {etcd_log})'
    assert [s.split()[0] for s in stopped] == ["kubelet", "containerd", "kube-scheduler", "kube-controller-manager",
                                              "kube-apiserver", "etcd"]


def test_pods_reach_the_api_server_at_the_kubernetes_service_from_the_bridge_only():
    """No kube-proxy: one DNAT rule stands in for the `kubernetes` Service, which in-cluster clients use."""
    from imagepipe.exec import cmdline

    rule = cmdline.service_route("ab12cd", "ipkab12cd", "https://10.244.7.1:41234")
    assert rule == ["-i", "ipkab12cd", "-d", "10.96.0.1", "-p", "tcp", "--dport", "443", "-m", "comment",
                    "--comment", "imagepipe-ab12cd kubernetes service", "-j", "DNAT", "--to-destination",
                    "10.244.7.1:41234"]
    apiserver = cmdline.kube_apiserver(Path("/bin/kube-apiserver"), pki=Path("/pki"), etcd_port=1, port=41234,
                                        node_ip="10.244.7.1", service_range="10.96.0.0/24", cert_dir=Path("/c"))
    assert "--bind-address=10.244.7.1" in apiserver  # the bridge's address: pods reach it, nothing off the host


def test_the_api_server_reaches_webhook_services_at_their_endpoints():
    """No kube-proxy, so a Service's ClusterIP answers nothing: an admission webhook (policy-controller's) and a
    CRD's conversion webhook are dialled at their endpoints' pod addresses instead."""
    from imagepipe.exec import cmdline

    apiserver = cmdline.kube_apiserver(Path("/bin/kube-apiserver"), pki=Path("/pki"), etcd_port=1, port=41234,
                                        node_ip="10.244.7.1", service_range="10.96.0.0/24", cert_dir=Path("/c"))
    assert "--enable-aggregator-routing=true" in apiserver
    assert "--enable-admission-plugins=NodeRestriction" in apiserver, "webhooks need no plugin flag: on by default"
