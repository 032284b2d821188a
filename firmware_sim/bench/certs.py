"""A throwaway PKI for the MQTT peers: a CA, a server certificate for 127.0.0.1 and one client
certificate per client (ECDSA P-256, the usual choice of IoT fleets using mutual TLS)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    clients: list[tuple[Path, Path]]  # (certificate, key) per client


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
          ca: bool = False, ip: str | None = None) -> x509.Certificate:  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path, clients: int) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("fleetsim bench CA", ca_key, "fleetsim bench CA", ca_key, ca=True)
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert("127.0.0.1", server_key, "fleetsim bench CA", ca_key, ip="127.0.0.1")
    (directory / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_key(directory / "server.key", server_key)
    out = []
    for i in range(clients):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"device-{i:06d}", key, "fleetsim bench CA", ca_key)
        cert_path, key_path = directory / f"client-{i}.pem", directory / f"client-{i}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        out.append((cert_path, key_path))
    return Pki(ca_path, directory / "server.pem", directory / "server.key", out)
