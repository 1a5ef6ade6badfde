"""Certificates of the test cluster: one CA, serving certificates for the API server and the
kubelet, and a client certificate per component identity.

Each component gets the identity a kubeadm cluster gives it, so the API server's bootstrap RBAC
and the Node authorizer apply to it as in production: the kubelet is ``system:node:<node>`` in
``system:nodes``, the scheduler ``system:kube-scheduler``, and so on. ECDSA P-256 keys: fast to
make, accepted everywhere (the service-account tokens are ES256).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=2)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


@dataclass(frozen=True)
class ClusterPki:
    ca: KeyPair
    apiserver: KeyPair
    kubelet_serving: KeyPair
    sa_public_key: Path
    sa_private_key: Path
    clients: dict[str, KeyPair]  # component -> its client certificate


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organization: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


class _Issuer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name("tokenpool-cluster-ca", None)
        self.cert = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
        )

    def write(self, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> KeyPair:
        pair = KeyPair(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(_key_pem(key))
        pair.key.chmod(0o600)
        return pair

    def issue(
        self,
        stem: str,
        common_name: str,
        organization: str | None = None,
        *,
        server: bool = False,
        dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (),
    ) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            self._builder(_name(common_name, organization), key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        )
        if dns or ips:
            names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
            names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return self.write(stem, builder.sign(self.key, hashes.SHA256()), key)


def generate(directory: Path, node_name: str, node_ip: str, kubernetes_service_ip: str) -> ClusterPki:
    """Write the cluster's CA, serving and client certificates and the service-account key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    issuer = _Issuer(directory)
    ca = issuer.write("ca", issuer.cert, issuer.key)
    apiserver = issuer.issue(
        "apiserver",
        "kube-apiserver",
        server=True,
        dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        ips=("127.0.0.1", node_ip, kubernetes_service_ip),
    )
    kubelet_serving = issuer.issue(
        "kubelet-serving",
        f"system:node:{node_name}",
        "system:nodes",
        server=True,
        dns=(node_name,),
        ips=(node_ip,),
    )
    identities = {
        "admin": ("tokenpool-admin", "system:masters"),
        # The API server's identity towards kubelets (logs, exec, port-forward).
        "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
        "kubelet": (f"system:node:{node_name}", "system:nodes"),
        "controller-manager": ("system:kube-controller-manager", None),
        "scheduler": ("system:kube-scheduler", None),
        "kube-proxy": ("system:kube-proxy", None),
    }
    clients = {name: issuer.issue(f"{name}-client", cn, org) for name, (cn, org) in identities.items()}
    sa_key = ec.generate_private_key(ec.SECP256R1())
    sa_private, sa_public = directory / "sa.key", directory / "sa.pub"
    sa_private.write_bytes(_key_pem(sa_key))
    sa_private.chmod(0o600)
    sa_public.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return ClusterPki(ca, apiserver, kubelet_serving, sa_public, sa_private, clients)


def upstream_tls(directory: Path, ip: str) -> tuple[KeyPair, KeyPair]:
    """A CA of its own and a serving certificate for ``ip``: the fake upstream speaks HTTPS, as
    the UpstreamToken CRD requires for any host but localhost. Returns (ca, serving)."""
    directory.mkdir(parents=True, exist_ok=True)
    issuer = _Issuer(directory)
    ca = issuer.write("upstream-ca", issuer.cert, issuer.key)
    return ca, issuer.issue("upstream", "fake-upstream", server=True, ips=(ip,))
