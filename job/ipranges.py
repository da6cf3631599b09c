"""Public addresses that belong to AWS, from AWS's published ip-ranges.json. Pure Python.

`classify(ip)` answers `aws:<service>:<region>` (service and region lower-cased, e.g.
`aws:s3:us-east-1`, `aws:cloudfront:global`) or None for an address outside every range.
The most specific prefix that contains the address wins; between prefixes of the same length a
specific service wins over "AMAZON" (AWS lists every range under AMAZON too), then the first
by service and region name, so the answer does not depend on the file's order.

The document is read from a file path or from an `s3://bucket/key` URL (boto3, imported only
then).
"""
import ipaddress
import json

from flowdredge.connectors import s3
from flowdredge.schemas.security import AWS_SERVICE_PREFIX
from flowdredge.schemas.settings import quoted

AMAZON = "AMAZON"


class IpRangesError(ValueError):
    pass


class IpRanges:
    def __init__(self, entries, sync_token: str = "", create_date: str = ""):
        """entries: (prefix, service, region) triples."""
        self.sync_token = sync_token
        self.create_date = create_date
        # (version, prefix length) -> {network address as int: best label}, longest first.
        tables = {}
        best = {}
        for prefix, service, region in entries:
            try:
                net = ipaddress.ip_network(prefix, strict=False)
            except ValueError:
                raise IpRangesError(f"bad prefix {quoted(prefix)} in ip-ranges") from None
            key = (net.version, net.prefixlen, int(net.network_address))
            rank = (service == AMAZON, service, region)
            if key not in best or rank < best[key]:
                best[key] = rank
        for (version, length, network), (_amazon, service, region) in best.items():
            tables.setdefault((version, length), {})[network] = (
                f"{AWS_SERVICE_PREFIX}{service.lower()}:{region.lower()}")
        self._tables = {v: sorted(((length, table) for (ver, length), table in tables.items()
                                   if ver == v), key=lambda t: -t[0])
                        for v in (4, 6)}

    def __len__(self):
        return sum(len(table) for tables in self._tables.values() for _l, table in tables)

    def classify(self, ip: str):
        addr = ipaddress.ip_address(ip)
        bits = addr.max_prefixlen
        value = int(addr)
        for length, table in self._tables[addr.version]:
            label = table.get(value >> (bits - length) << (bits - length))
            if label is not None:
                return label
        return None

    @classmethod
    def from_document(cls, doc: dict) -> "IpRanges":
        if not isinstance(doc, dict) or "prefixes" not in doc:
            raise IpRangesError("not an ip-ranges.json document (no 'prefixes')")
        entries = (_entries(doc["prefixes"], "prefixes", "ip_prefix")
                   + _entries(doc.get("ipv6_prefixes", []), "ipv6_prefixes", "ipv6_prefix"))
        return cls(entries, str(doc.get("syncToken", "")), str(doc.get("createDate", "")))


def _entries(items, name: str, prefix: str) -> list:
    """(prefix, service, region) of each of a list's entries, each value text as AWS writes it:
    a service of null failed the job's start with AttributeError's traceback, and a prefix
    that is a number was taken for a single address (50331648 for 3.0.0.0/32)."""
    if not isinstance(items, list):
        raise IpRangesError(f"ip-ranges {name}: not a list")
    entries = []
    for item in items:
        if not isinstance(item, dict):
            raise IpRangesError(f"ip-ranges {name}: an entry that is not an object: "
                                f"{quoted(item, str)}")
        for key in (prefix, "service", "region"):
            if key not in item:
                raise IpRangesError(f"ip-ranges entry without {key!r}")
            if not isinstance(item[key], str):
                raise IpRangesError(f"ip-ranges entry whose {key} is not text: "
                                    f"{quoted(item[key], str)}")
        entries.append((item[prefix], item["service"], item["region"]))
    return entries


def load(location: str, s3_client=None) -> IpRanges:
    """ip-ranges.json from a path or s3://bucket/key (`s3_client` defaults to boto3's).
    IpRangesError, in one line, for a location that cannot be read (S3's or boto3's error
    said: a missing object or bucket, no credentials) and for a document that is not one."""
    if s3.is_s3(location):
        data = _s3_object(location, s3_client)
    else:
        try:
            with open(location, "rb") as fh:
                data = fh.read()
        except OSError as err:
            raise IpRangesError(f"cannot read {location}: {err.strerror}") from None
    try:
        # Bytes: text that is not UTF-8 is not JSON (UnicodeDecodeError is a ValueError); read
        # as text, it stopped the start with that error's traceback.
        doc = json.loads(data)
    except ValueError as err:
        raise IpRangesError(f"{location}: not JSON: {err}") from None
    except RecursionError:
        raise IpRangesError(f"{location}: not JSON: nested deeper than its decoder goes") from None
    return IpRanges.from_document(doc)


def _s3_object(url: str, s3_client) -> bytes:
    try:
        bucket, key = s3.split(url)
    except ValueError as err:
        raise IpRangesError(str(err)) from None
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    try:
        if s3_client is None:
            s3_client = boto3.client("s3")
        return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as err:
        raise IpRangesError(f"cannot read {url}: {err}") from None
