"""Read the certificate Nginx serves for acme.test."""


def served_certificate(host):
    out = host.check_output(
        "openssl s_client -connect 127.0.0.1:443 -servername acme.test </dev/null 2>/dev/null"
        " | openssl x509 -noout -subject -issuer -serial -ext subjectAltName")
    cert = {"subject": "", "issuer": "", "serial": "", "san": ""}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key in cert:
            cert[key] = value.strip()
        elif "DNS:" in line:
            cert["san"] = line.strip()
    return cert
