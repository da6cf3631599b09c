"""Locations: s3:// URLs (the one place that splits them into bucket and key or prefix), and
paths or URLs as Flink's file systems take them. Pure Python."""
import os

SCHEME = "s3://"


def is_s3(location: str) -> bool:
    return location.startswith(SCHEME)


def split(url: str, key_required: bool = True) -> tuple:
    """"s3://bucket/a/b" -> ("bucket", "a/b"). ValueError, naming the URL, when it is not an
    s3:// URL, has no bucket, or has no key and `key_required` (a prefix may be empty)."""
    bucket, _, key = url[len(SCHEME):].partition("/") if is_s3(url) else ("", "", "")
    if not bucket or (key_required and not key):
        raise ValueError(f"{url!r}: expected s3://bucket/{'key' if key_required else 'prefix'}")
    return bucket, key


def flink_uri(path_or_url: str) -> str:
    """A location as Flink's file systems want it (checkpoints, file sources and sinks): URLs
    as they are, paths as absolute file:// URLs."""
    if "://" in path_or_url:
        return path_or_url
    return "file://" + os.path.abspath(path_or_url)
