"""This node's fleet key and certificate, made once and kept in ``<data_dir>/fleet``.

Pairing exchanges certificates only (public); the private key never leaves the node.
Each side pins the certificates it was given, so a self-signed certificate is all the
tunnel needs: there is no authority to trust.
"""

from __future__ import annotations

from dataclasses import dataclass
import datetime
import hashlib
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KEY_FILE = "node.key"
CERT_FILE = "node.crt"
_VALID = datetime.timedelta(days=365 * 30)


class InvalidCertificateError(ValueError):
    """Text that is not one PEM certificate."""


@dataclass(frozen=True, slots=True)
class NodeKey:
    key_path: Path
    cert_path: Path
    certificate: str
    """PEM, public: what peers are given at pairing."""
    fingerprint: str


def fingerprint(pem: str) -> str:
    """SHA-256 of the certificate's DER bytes, hex; raises InvalidCertificateError."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as err:
        raise InvalidCertificateError(f"not a PEM certificate: {err}") from err
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def der_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def load_or_create(directory: Path, node_id: str, *, renew: bool = False) -> NodeKey:
    """The node's key and certificate, made on first use (or afresh with ``renew``)."""
    key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
    if renew or not (key_path.is_file() and cert_path.is_file()):
        _create(directory, node_id)
    pem = cert_path.read_text(encoding="ascii")
    return NodeKey(key_path, cert_path, pem, fingerprint(pem))


def _create(directory: Path, node_id: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"heatcompute {node_id}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + _VALID)
        # Its own trust anchor: the peer loads it as the only "authority" it accepts.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(directory / KEY_FILE, key_bytes, mode=0o600)
    _write(directory / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _write(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(path)
