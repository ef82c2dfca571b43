"""A self-signed TLS certificate for 127.0.0.1 and localhost, made at test time (never committed).

The in-repo gRPC fakes serve with it, and the real Google clients trust it through
GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, so their production construction (a secure channel with the
default roots) is unchanged. gRPC reads that variable once per process, when it first loads the
default roots: `install_grpc_roots()` must run before the first secure channel of the process,
which is why tests/contract/conftest.py calls it when pytest configures.
"""

import atexit
import datetime
import ipaddress
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOTS_ENV = "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"


@dataclass(frozen=True)
class LocalhostTls:
    cert_pem: bytes
    key_pem: bytes
    cert_path: Path


@cache
def localhost_tls() -> LocalhostTls:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "atalaya test fakes")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    folder = Path(tempfile.mkdtemp(prefix="atalaya-grpc-tls-"))
    atexit.register(shutil.rmtree, folder, True)
    cert_path = folder / "localhost.pem"
    cert_path.write_bytes(cert_pem)
    return LocalhostTls(cert_pem=cert_pem, key_pem=key_pem, cert_path=cert_path)


def install_grpc_roots() -> LocalhostTls:
    """Make this process's gRPC trust the test certificate (and only it: nothing here reaches Google)."""
    tls = localhost_tls()
    os.environ[ROOTS_ENV] = str(tls.cert_path)
    return tls
