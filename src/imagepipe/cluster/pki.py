"""One CA for every part of the local cluster: the apiserver's serving certificate, the client certificates
of admin, the controller-manager, the scheduler, the node and the apiserver's kubelet client, the kubelet's
serving certificate, and the service-account key pair. ECDSA P-256: fast to make, accepted everywhere."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAYS = 7


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


class Authority:
    """The cluster's CA, written into `directory` (ca.crt, ca.key), issuing the rest there."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.now = datetime.datetime.now(datetime.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (self._builder(_name("imagepipe local cluster CA"), self.key.public_key())
                     .issuer_name(_name("imagepipe local cluster CA"))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.ca = directory / "ca.crt"
        self.ca.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        _write_key(directory / "ca.key", self.key)

    def _builder(self, subject: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).public_key(public)
                .serial_number(x509.random_serial_number())
                .not_valid_before(self.now - datetime.timedelta(minutes=5))
                .not_valid_after(self.now + datetime.timedelta(days=DAYS)))

    def issue(self, name: str, cn: str, *, org: str | None = None, server: bool = False, client: bool = False,
              ips: tuple[str, ...] = (), dns: tuple[str, ...] = ()) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH]
                                                                          if client else [])
        builder = (self._builder(_name(cn, org), key.public_key()).issuer_name(self.cert.subject)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
        if ips or dns:
            sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
            sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        pair = Pair(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pair.key, key)
        return pair

    def service_account_keys(self) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        pair = Pair(self.dir / "sa.pub", self.dir / "sa.key")
        pair.cert.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
        _write_key(pair.key, key)
        return pair


def issue_all(directory: Path, *, kubeconfigs: Path, node: str, node_ip: str, server: str, context: str) -> None:
    """Every certificate of the cluster, and the kubeconfigs of admin (`kubeconfig`), the controller-manager,
    the scheduler and the node (`<name>.kubeconfig`), all in one context named `context`."""
    from imagepipe.cluster import configs

    ca = Authority(directory)
    ca.issue("apiserver", "kube-apiserver", server=True, ips=("127.0.0.1", node_ip, "10.96.0.1"),
             dns=("kubernetes", "kubernetes.default", "kubernetes.default.svc", "localhost"))
    ca.issue("admin", "imagepipe-admin", org="system:masters", client=True)
    ca.issue("controller-manager", "system:kube-controller-manager", client=True)
    ca.issue("scheduler", "system:kube-scheduler", client=True)
    ca.issue("node", f"system:node:{node}", org="system:nodes", client=True)
    ca.issue("apiserver-kubelet", "kube-apiserver-kubelet-client", org="system:masters", client=True)
    ca.issue("kubelet", node, server=True, ips=(node_ip,), dns=(node,))
    ca.service_account_keys()
    for name, user in (("admin", "admin"), ("controller-manager", "system:kube-controller-manager"),
                       ("scheduler", "system:kube-scheduler"), ("node", f"system:node:{node}")):
        path = kubeconfigs / ("kubeconfig" if name == "admin" else f"{name}.kubeconfig")
        path.write_text(configs.kubeconfig(name=context, server=server, ca=ca.ca, user=user,
                                           cert=directory / f"{name}.crt", key=directory / f"{name}.key"))
        os.chmod(path, 0o600)
