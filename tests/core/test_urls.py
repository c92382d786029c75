import ipaddress

import pytest

from app.core.errors import InvalidInput
from app.core.urls import check_backend_url, is_forbidden_address


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5:8080/predict",
        "http://127.0.0.1:9000/p",
        "https://gpu1.example.com/predict",
        "http://192.168.1.20/health",
        "http://gpu_7.internal:8000/p",
        "http://[::1]:8000/p",
        "http://xn--bcher-kva.example/p",
        "http://LOCALHOST./p",
    ],
)
def test_private_loopback_and_public_backends_are_allowed(url):
    assert check_backend_url(url, "predict") == url


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/x",
        "http://metadata.google.internal/",
        "ftp://10.0.0.1/x",
        "file:///etc/passwd",
        "http:///nohost",
        "http://0.0.0.0/",
        "http://[",
        "http://[::1/x",
        "http://a]b/",
        "http://gpu 1.local/p",
        "http://gpu1.local/p q",
        "http://gpu1.local:99999/p",
        "http://gpu1.local:80x/p",
        "http://-gpu.local/p",
        "http://gpu..local/p",
        "http://gpu\x01.local/p",
        "http://bücher.example/p",
    ],
)
def test_link_local_metadata_and_non_http_urls_are_refused(url):
    with pytest.raises(InvalidInput):
        check_backend_url(url, "predict")


@pytest.mark.parametrize(
    "url",
    [
        "http://2852039166/",
        "http://0251.0376.0251.0376/",
        "http://0xa9fea9fe/",
        "http://[::ffff:169.254.169.254]/",
        "http://169.254.169.254./",
    ],
)
def test_other_spellings_of_the_metadata_address_are_refused(url):
    with pytest.raises(InvalidInput):
        check_backend_url(url, "predict")


#: The metadata and host-agent addresses, and the IPv6 forms that lead to one (issue 17,
#: item 10): each is refused as a URL host and as an address a name resolves to.
FORBIDDEN = [
    ("169.254.169.254", "AWS/GCP/Azure/DigitalOcean metadata"),
    ("169.254.170.2", "AWS ECS task metadata (link-local)"),
    ("168.63.129.16", "Azure WireServer"),
    ("100.100.100.200", "Alibaba Cloud metadata"),
    ("192.0.0.192", "Oracle Cloud legacy metadata"),
    ("fd00:ec2::254", "AWS IPv6 metadata"),
    ("::ffff:169.254.169.254", "IPv4-mapped"),
    ("::ffff:168.63.129.16", "IPv4-mapped Azure"),
    ("::169.254.169.254", "IPv4-compatible"),
    ("::a9fe:a9fe", "IPv4-compatible, hex"),
    ("::168.63.129.16", "IPv4-compatible Azure"),
    ("::ffff:0:169.254.169.254", "SIIT IPv4-translated"),
    ("64:ff9b::169.254.169.254", "NAT64 well-known prefix"),
    ("64:ff9b::a9fe:a9fe", "NAT64, hex"),
    ("64:ff9b::100.100.100.200", "NAT64 Alibaba"),
    ("64:ff9b::168.63.129.16", "NAT64 Azure"),
    ("64:ff9b:1::a9fe:a9fe", "NAT64 local-use prefix"),
    ("2002:a9fe:a9fe::1", "6to4"),
    ("2001:0:4136:e378:8000:63bf:5601:5601", "Teredo, client 169.254.169.254"),
    ("fe80::1", "IPv6 link-local"),
    ("ff02::1", "multicast"),
    ("224.0.0.1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
]
ALLOWED = [
    ("127.0.0.1", "loopback: a demo fleet"),
    ("::1", "IPv6 loopback"),
    ("10.0.0.5", "private: a GPU fleet"),
    ("192.168.1.20", "private"),
    ("fd12:3456::1", "IPv6 unique local"),
    ("::ffff:10.0.0.5", "IPv4-mapped private"),
    ("64:ff9b::10.0.0.5", "NAT64 of a private address"),
    ("64:ff9b::8.8.8.8", "NAT64 of a public address"),
    ("2001:db8::1", "documentation"),
    ("8.8.8.8", "public"),
]


@pytest.mark.parametrize("address, what", FORBIDDEN, ids=[a for a, _ in FORBIDDEN])
def test_metadata_addresses_in_every_form_are_forbidden(address, what):
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(InvalidInput):
        check_backend_url(f"http://{host}/p", "predict")
    assert is_forbidden_address(ipaddress.ip_address(address)), what


@pytest.mark.parametrize("address, what", ALLOWED, ids=[a for a, _ in ALLOWED])
def test_private_loopback_and_public_addresses_are_not(address, what):
    host = f"[{address}]" if ":" in address else address
    assert check_backend_url(f"http://{host}:8000/p", "predict")
    assert not is_forbidden_address(ipaddress.ip_address(address)), what


@pytest.mark.parametrize(
    "name", ["metadata", "metadata.google.internal.", "instance-data", "INSTANCE-DATA.ec2.internal"]
)
def test_metadata_names_are_refused(name):
    with pytest.raises(InvalidInput):
        check_backend_url(f"http://{name}/latest", "predict")


def test_a_name_resolving_to_a_link_local_address_is_refused_when_called():
    from app.backends import BackendClient

    client = BackendClient(5)
    assert client.allowed("http://127.0.0.1:9/p")
    assert not client.allowed("http://169.254.169.254/p")
    assert client.allowed("http://no-such-host.invalid/p")  # fails later as a connection error
