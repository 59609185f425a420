"""Throwaway certificate authority and server certificate for 127.0.0.1.

Uses the `cryptography` package when it can be imported, else the `openssl` command.
Keys are EC P-256: quick to generate and accepted by both Go (kubectl) and Python clients.
"""
from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: str        # PEM path of the CA that signed the server certificate
    server_cert: str
    server_key: str

    def ca_pem(self) -> bytes:
        with open(self.ca_cert, "rb") as f:
            return f.read()


def have_cryptography() -> bool:
    try:
        import cryptography.x509  # noqa: F401
    except ImportError:
        return False
    return True


def generate(directory: str, *, common_name: str = "kubectl-virtio test CA",
             backend: str | None = None) -> TlsFiles:
    """Write ca.crt, server.crt and server.key into `directory` and return their paths."""
    os.makedirs(directory, exist_ok=True)
    backend = backend or ("cryptography" if have_cryptography() else "openssl")
    if backend == "cryptography":
        return _generate_cryptography(directory, common_name)
    if backend == "openssl":
        return _generate_openssl(directory, common_name)
    raise ValueError(f"unknown TLS backend {backend!r}")


def _generate_cryptography(directory: str, common_name: str) -> TlsFiles:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca_cert = (x509.CertificateBuilder()
               .subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))

    files = TlsFiles(os.path.join(directory, "ca.crt"), os.path.join(directory, "server.crt"),
                     os.path.join(directory, "server.key"))
    with open(files.ca_cert, "wb") as f:
        f.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(files.server_cert, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(files.server_key, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return files


def _generate_openssl(directory: str, common_name: str) -> TlsFiles:
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError("neither the 'cryptography' package nor the 'openssl' command is available")
    p = lambda name: os.path.join(directory, name)  # noqa: E731

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", p("ca.key"))
    run("req", "-x509", "-new", "-key", p("ca.key"), "-sha256", "-days", "2", "-subj", f"/CN={common_name}",
        "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext", "keyUsage=critical,digitalSignature,keyCertSign,cRLSign",
        "-out", p("ca.crt"))
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", p("server.ec.key"))
    # PKCS#8 like the cryptography path, so both produce the same kind of files.
    run("pkcs8", "-topk8", "-nocrypt", "-in", p("server.ec.key"), "-out", p("server.key"))
    run("req", "-new", "-key", p("server.key"), "-subj", "/CN=kube-apiserver", "-out", p("server.csr"))
    with open(p("server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=critical,CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-days", "2", "-sha256", "-extfile", p("server.ext"), "-out", p("server.crt"))
    return TlsFiles(p("ca.crt"), p("server.crt"), p("server.key"))
