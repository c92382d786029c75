import pytest

from app.core.errors import InvalidInput
from app.core.urls import check_backend_url


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


def test_a_name_resolving_to_a_link_local_address_is_refused_when_called():
    from app.backends import BackendClient

    client = BackendClient(5)
    assert client.allowed("http://127.0.0.1:9/p")
    assert not client.allowed("http://169.254.169.254/p")
    assert client.allowed("http://no-such-host.invalid/p")  # fails later as a connection error
