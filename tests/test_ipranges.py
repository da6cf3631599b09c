"""job.ipranges on a small ip-ranges.json fixture (tests/data/ip-ranges.json)."""
import json
import os

import pytest

from flowdredge.job.ipranges import IpRanges, IpRangesError, load

pytestmark = pytest.mark.unit

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "ip-ranges.json")


@pytest.fixture(scope="module")
def ranges():
    return load(FIXTURE)


@pytest.mark.parametrize("ip, label", [
    ("52.217.1.1", "aws:s3:us-east-1"),          # same prefix as AMAZON: the service wins
    ("52.216.10.7", "aws:ec2:us-east-2"),        # the /24 inside the /15 wins
    ("52.216.11.7", "aws:s3:us-east-1"),
    ("54.239.28.1", "aws:amazon:us-east-1"),     # only AMAZON knows it
    ("13.33.255.255", "aws:cloudfront:global"),  # last address of the /15
    ("13.34.0.0", None),                         # first one after it
    ("3.5.141.9", "aws:ec2:ap-northeast-2"),     # two services, one prefix: by name
    ("2600:1f18::1", "aws:ec2:us-east-1"),
    ("2600:1f01::1", "aws:amazon:us-east-1"),
    ("2600:1f18:0:0::a", "aws:ec2:us-east-1"),
    ("8.8.8.8", None),
    ("10.0.0.1", None),
    ("2001:db8::1", None),
])
def test_classify(ranges, ip, label):
    assert ranges.classify(ip) == label


def test_document_facts(ranges):
    assert ranges.sync_token == "1767225600"
    assert ranges.create_date == "2026-01-01-00-00-00"
    assert len(ranges) == 7   # distinct prefixes


def test_answer_does_not_depend_on_file_order():
    with open(FIXTURE) as fh:
        doc = json.load(fh)
    reordered = dict(doc, prefixes=list(reversed(doc["prefixes"])))
    forward, backward = IpRanges.from_document(doc), IpRanges.from_document(reordered)
    for ip in ("52.217.1.1", "3.5.141.9", "13.32.0.1", "52.216.10.7"):
        assert forward.classify(ip) == backward.classify(ip)


def test_s3_url_reads_through_the_given_client():
    class FakeS3:
        def get_object(self, Bucket, Key):
            assert (Bucket, Key) == ("ranges-bucket", "aws/ip-ranges.json")
            import io
            with open(FIXTURE, "rb") as fh:
                return {"Body": io.BytesIO(fh.read())}
    assert load("s3://ranges-bucket/aws/ip-ranges.json", FakeS3()).classify(
        "52.217.1.1") == "aws:s3:us-east-1"


@pytest.mark.parametrize("doc, message", [
    ({"syncToken": "1"}, "no 'prefixes'"),
    ({"prefixes": [{"ip_prefix": "1.2.3.0/24", "region": "x"}]}, "without 'service'"),
    ({"prefixes": [{"ip_prefix": "1.2.3.999/24", "region": "x", "service": "S3"}]}, "bad prefix"),
    # A value of another type than text: AttributeError's or TypeError's traceback stopped the
    # command, and a number was taken for an address.
    ({"prefixes": [{"ip_prefix": "3.0.0.0/8", "region": "x", "service": None}]},
     "^ip-ranges entry whose service is not text: None$"),
    ({"prefixes": [{"ip_prefix": "3.0.0.0/8", "region": 5, "service": "S3"}]},
     "^ip-ranges entry whose region is not text: 5$"),
    ({"prefixes": [{"ip_prefix": 50331648, "region": "x", "service": "S3"}]},
     "^ip-ranges entry whose ip_prefix is not text: 50331648$"),
    ({"prefixes": [{"ip_prefix": "3.0.0.0/8", "region": "x", "service": "S3"},
                   {"ip_prefix": "3.0.0.0/8", "region": "x", "service": ["S3"]}]},
     r"^ip-ranges entry whose service is not text: \['S3'\]$"),
    ({"prefixes": {"ip_prefix": "3.0.0.0/8"}}, "^ip-ranges prefixes: not a list$"),
    ({"prefixes": [], "ipv6_prefixes": [1]},
     "^ip-ranges ipv6_prefixes: an entry that is not an object: 1$"),
    ({"prefixes": [], "ipv6_prefixes": [{"ip_prefix": "::/0", "region": "x", "service": "S3"}]},
     "^ip-ranges entry without 'ipv6_prefix'$"),
    # A value of thousands of characters: cut to 40, then its length (a review: quoted whole,
    # or cut at 100 without a word).
    ({"prefixes": [{"ip_prefix": "1" * 5000, "region": "x", "service": "S3"}]},
     r"^bad prefix '1{39}\.\.\. \(5,002 characters\) in ip-ranges$"),
    ({"prefixes": [{"ip_prefix": "3.0.0.0/8", "region": ["x" * 5000], "service": "S3"}]},
     r"^ip-ranges entry whose region is not text: \['x{38}\.\.\. \(5,004 characters\)$"),
    ({"prefixes": ["x" * 5000]},
     r"^ip-ranges prefixes: an entry that is not an object: x{40}\.\.\. \(5,000 characters\)$"),
])
def test_bad_documents_say_what_is_wrong(doc, message):
    with pytest.raises(IpRangesError, match=message):
        IpRanges.from_document(doc)


def test_bad_locations(tmp_path):
    with pytest.raises(IpRangesError, match="cannot read"):
        load(str(tmp_path / "missing.json"))
    (tmp_path / "x.json").write_text("not json")
    with pytest.raises(IpRangesError, match="not JSON"):
        load(str(tmp_path / "x.json"))
    (tmp_path / "x.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(IpRangesError, match="not JSON: nested deeper than its decoder goes"):
        load(str(tmp_path / "x.json"))
    with pytest.raises(IpRangesError, match="s3://bucket/key"):
        load("s3://only-bucket")
    # Bytes that are not UTF-8: UnicodeDecodeError's traceback, not a line saying so.
    (tmp_path / "x.json").write_bytes(b'{"prefixes": [], "syncToken": "\xe9"}')
    with pytest.raises(IpRangesError, match="^.*x.json: not JSON: 'utf-8' codec can't decode"):
        load(str(tmp_path / "x.json"))


def test_an_s3_object_that_cannot_be_read_is_said_in_one_line():
    """S3's refusal was botocore's ClientError, which the start's check (job.startup) did not
    take for a bad metadata.ip_ranges."""
    from botocore.exceptions import ClientError, NoCredentialsError

    class Refusing:
        def __init__(self, error):
            self.error = error

        def get_object(self, Bucket, Key):
            raise self.error
    for error, said in (
            (ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}},
                         "GetObject"),
             "An error occurred (AccessDenied) when calling the GetObject operation: Access "
             "Denied"),
            (NoCredentialsError(), "Unable to locate credentials")):
        with pytest.raises(IpRangesError) as raised:
            load("s3://b/ip-ranges.json", Refusing(error))
        assert str(raised.value) == f"cannot read s3://b/ip-ranges.json: {said}"
