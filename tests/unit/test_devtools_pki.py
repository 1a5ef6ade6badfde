"""The control plane's generated PKI and kubeconfig files (no server needed)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tokenpool.dev import kubeconfig, pki


def test_certificates_chain_to_the_ca_with_the_right_names(tmp_path: Path) -> None:
    files = pki.generate(tmp_path, admin_user="alice")
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    serving = x509.load_pem_x509_certificate(files.serving_cert.read_bytes())
    admin = x509.load_pem_x509_certificate(files.admin_cert.read_bytes())

    serving.verify_directly_issued_by(ca)
    admin.verify_directly_issued_by(ca)
    san = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    eku = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    # Kubernetes maps CN to the user name and O to groups: system:masters is cluster-admin.
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in tmp_path.iterdir())


def test_kubeconfig_round_trip_and_token_user(tmp_path: Path) -> None:
    path = kubeconfig.write(tmp_path / "kc", "https://127.0.0.1:6443", b"CA PEM", "sa", token="t0k3n")
    info = kubeconfig.cluster_info(path)
    assert (info.server, info.ca_pem) == ("https://127.0.0.1:6443", b"CA PEM")
    doc = yaml.safe_load(Path(path).read_text())
    assert doc["users"] == [{"name": "sa", "user": {"token": "t0k3n"}}]


def test_cluster_info_reads_a_ca_file_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(b"FILE CA")
    (tmp_path / "kc").write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {"name": "c", "cluster": {"server": "https://x", "certificate-authority": "ca.crt"}}
                ],
                "contexts": [{"name": "k", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "k",
            }
        )
    )
    assert kubeconfig.cluster_info(tmp_path / "kc").ca_pem == b"FILE CA"
    (tmp_path / "bad").write_text(yaml.safe_dump({"current-context": "nope", "contexts": []}))
    with pytest.raises(ValueError, match="current-context 'nope'"):
        kubeconfig.cluster_info(tmp_path / "bad")
