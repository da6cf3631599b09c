"""Deploying the application zip (operate.package) to Amazon Managed Service for Apache Flink with
boto3 `kinesisanalyticsv2`: create, update (restoring from the snapshot the service takes),
rollback, start, stop, snapshot, status. Pure Python, no pyflink.

    scripts/managed-flink create --name flowdredge --role ARN --bucket B --io flows=s3://...
    scripts/managed-flink update --name flowdredge --bucket B
    scripts/managed-flink rollback --name flowdredge

docs/managed-flink.md explains each step and the IAM permissions.
"""
import argparse
import hashlib
import json
import math
import os
import re
import sys
import tempfile
import zipfile
from io import BytesIO

from flowdredge.job import managed
from flowdredge.job.config import ConfigError, to_application_properties
from flowdredge.job.config import load as load_config
from flowdredge.operate import package
from flowdredge.schemas.settings import quoted

RUNTIME = "FLINK-2_2"
DEFAULT_PROPERTIES = os.path.join(package.ROOT, "flink-conf", "application_properties.json")
# The default key names the zip's content: the service loads no new code under a key it runs
# unless given a new object version, which an unversioned bucket has none of.
KEY_PREFIX = "flowdredge/flowdredge-managed-flink-"


class DeployError(RuntimeError):
    pass


def jarfile_in(zip_path: str):
    """The connector jar the zip carries (its BUILD-INFO.json says), or None."""
    with zipfile.ZipFile(zip_path) as zf:
        if "BUILD-INFO.json" not in zf.namelist():
            raise DeployError(f"{zip_path} was not built by scripts/managed-flink package")
        return json.loads(zf.read("BUILD-INFO.json"))["jarfile"]


def read_properties(properties_path: str) -> list:
    """The property groups of an application_properties.json, or of a YAML config (as
    `flowdredge --config` takes: its values, defaults included, as the service's strings)."""
    if properties_path.endswith((".yaml", ".yml")):
        return to_application_properties(load_config(properties_path))
    try:
        with open(properties_path, encoding="utf-8") as fh:
            groups = json.load(fh)
    except ValueError as err:
        raise DeployError(f"{properties_path}: not JSON ({err}); --properties takes an "
                          f"application_properties.json or a YAML config") from None
    if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("PropertyGroupId"), str)
            and isinstance(g.get("PropertyMap"), dict) for g in groups):
        raise DeployError(f"{properties_path}: expected a list of property groups "
                          f"({{\"PropertyGroupId\": ..., \"PropertyMap\": {{...}}}})")
    return groups


def _property_value(group: str, key: str, value) -> str:
    # The service takes strings only (botocore refuses the rest, after the upload).
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int)) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    raise DeployError(f"{group}.{key}: expected a string, number or boolean, got "
                      f"{quoted(value)}")


def property_groups(job_groups: list, io_values: dict, jarfile: str = None) -> list:
    """The job's groups (an application_properties.json's list; its io and run options left
    out), the `io` group, and the service's run options (where main.py and the jar are in the
    zip); validated as the job will read them."""
    ids = [g.get("PropertyGroupId") for g in job_groups]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:   # the service would keep one of them, silently
        raise DeployError(f"property group {', '.join(map(str, twice))} given more than once")
    groups = [g for g in job_groups
              if g.get("PropertyGroupId") not in (managed.IO_GROUP, managed.RUN_OPTIONS_GROUP)]
    groups.append({"PropertyGroupId": managed.IO_GROUP,
                   "PropertyMap": {k: str(v) for k, v in io_values.items()}})
    # The API refuses empty values; an absent key takes its default, which is the empty one.
    groups = [{"PropertyGroupId": g["PropertyGroupId"],
               "PropertyMap": {k: _property_value(g["PropertyGroupId"], k, v)
                               for k, v in g["PropertyMap"].items() if v != ""}}
              for g in groups]
    _as_the_job_reads(groups)
    run_options = {"python": "main.py"}
    if jarfile:
        run_options["jarfile"] = jarfile
    groups.append({"PropertyGroupId": managed.RUN_OPTIONS_GROUP, "PropertyMap": run_options})
    _check_service_limits(groups)
    return groups


def _as_the_job_reads(groups: list) -> managed.ManagedProperties:
    with tempfile.NamedTemporaryFile("w", suffix=".json") as tmp:
        json.dump(groups, tmp)
        tmp.flush()
        try:
            return managed.load(tmp.name)
        except ConfigError as err:   # the file is this function's, not the operator's
            raise ConfigError(str(err).replace(f"{tmp.name}: ", "")) from None


def check_jar(zip_path: str, groups: list) -> None:
    """Refuses a zip whose job the service could not run for want of Java classes (said only
    once it starts there): every job uses the project's adapters in the zip's jar (the file
    sources and sinks too), the streaming job (kinesis.flow_streams) the Kinesis connector.
    `groups` as property_groups gives them."""
    fix = ("run scripts/setup (it builds the jar), then scripts/managed-flink package "
           "--require-connector")
    jarfile = jarfile_in(zip_path)
    with zipfile.ZipFile(zip_path) as zf:
        if not jarfile or jarfile not in zf.namelist():
            raise DeployError(f"{zip_path} has no connector jar ({package.JAR_NAME}), whose "
                              f"adapters every job uses: {fix}")
        with zipfile.ZipFile(BytesIO(zf.read(jarfile))) as jar:
            names = jar.namelist()
    if not any(n.startswith(package.ADAPTER_CLASSES) for n in names):
        raise DeployError(f"{jarfile} in {zip_path} has no adapters ({package.ADAPTER_CLASSES}), "
                          f"which every job uses: {fix}")
    if (_as_the_job_reads(groups).config.kinesis.flow_streams
            and not any(n.startswith(package.KINESIS_CLASSES) for n in names)):
        raise DeployError(f"kinesis.flow_streams is set and {jarfile} in {zip_path} has no "
                          f"Kinesis connector ({package.KINESIS_CLASSES}): {fix}")


# The service's limits on runtime properties (API_PropertyGroup, EnvironmentProperties):
# botocore checks none of the lengths, so the service refused them only after the upload.
MAX_GROUPS, MAX_KEYS, MAX_CHARS = 50, 50, 2048
_GROUP_ID = re.compile(r"[a-zA-Z0-9_.-]{1,50}")


def _check_service_limits(groups: list) -> None:
    if len(groups) > MAX_GROUPS:
        raise DeployError(f"{len(groups)} property groups: Managed Flink takes at most "
                          f"{MAX_GROUPS}")
    for group in groups:
        name, values = group["PropertyGroupId"], group["PropertyMap"]
        if not isinstance(name, str) or not _GROUP_ID.fullmatch(name):
            raise DeployError(f"property group {name!r}: Managed Flink takes 1-50 of "
                              f"a-z A-Z 0-9 _ . -")
        if len(values) > MAX_KEYS:
            raise DeployError(f"{name}: {len(values)} properties, Managed Flink takes at most "
                              f"{MAX_KEYS} a group")
        for key, value in values.items():
            for what, text in (("key", key), ("value", value)):
                if len(text) > MAX_CHARS:
                    raise DeployError(f"{name}.{key[:60]}: its {what} has {len(text):,} "
                                      f"characters; Managed Flink takes at most {MAX_CHARS:,}")


def _parallelism(groups: list) -> int:
    job = next((g["PropertyMap"] for g in groups if g["PropertyGroupId"] == "job"), {})
    return int(job.get("parallelism", 1))


def code_key(zip_path: str, key: str = None) -> str:
    """`key`, or by default a key naming the zip's content."""
    if key:
        return key
    with open(zip_path, "rb") as fh:
        return f"{KEY_PREFIX}{hashlib.sha256(fh.read()).hexdigest()[:16]}.zip"


def check_key(s3, bucket: str, key: str, given: bool) -> None:
    """A key of the user's choosing needs a versioned bucket: the service reloads code under
    the same key only for a new object version, so an update would keep running the old code
    (and an unversioned put would replace the object a running application was made from)."""
    if given and s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        raise DeployError(f"--key {key}: bucket {bucket} is not versioned, and the service loads "
                          f"no new code under a key it already runs without a new object "
                          f"version; enable versioning, or leave --key out (a key per build)")


def upload(s3, zip_path: str, bucket: str, key: str):
    """Puts the zip in S3 unless the object there is this zip already (its sha256 in the
    object's metadata); returns its object version (None in an unversioned bucket)."""
    from botocore.exceptions import ClientError
    with open(zip_path, "rb") as fh:
        body = fh.read()
    digest = hashlib.sha256(body).hexdigest()
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        # 403 for a key not there yet, to a caller without s3:ListBucket on the bucket: then
        # the zip is uploaded (again); PutObject says if that is not allowed either.
        if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound",
                                                             "403", "Forbidden",
                                                             "AccessDenied"):
            raise
        head = {}
    if head.get("Metadata", {}).get("sha256") == digest:
        return head.get("VersionId")
    response = s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"sha256": digest})
    return response.get("VersionId")


def _code_location(bucket: str, key: str, version):
    location = {"BucketARN": f"arn:aws:s3:::{bucket}", "FileKey": key}
    if version:
        location["ObjectVersion"] = version
    return location


def create_request(name: str, role_arn: str, bucket: str, key: str, version, groups: list,
                   log_stream_arn: str = None) -> dict:
    request = {
        "ApplicationName": name,
        "RuntimeEnvironment": RUNTIME,
        "ServiceExecutionRole": role_arn,
        "ApplicationConfiguration": {
            "ApplicationCodeConfiguration": {
                "CodeContent": {"S3ContentLocation": _code_location(bucket, key, version)},
                "CodeContentType": "ZIPFILE"},
            "EnvironmentProperties": {"PropertyGroups": groups},
            "FlinkApplicationConfiguration": {
                "CheckpointConfiguration": {"ConfigurationType": "DEFAULT"},
                "MonitoringConfiguration": {"ConfigurationType": "CUSTOM",
                                            "MetricsLevel": "OPERATOR", "LogLevel": "INFO"},
                # The job's own parallelism setting; the service's autoscaling would change it
                # behind the job's back (job.attribution_keys bounds useful parallelism).
                "ParallelismConfiguration": {"ConfigurationType": "CUSTOM",
                                             "Parallelism": _parallelism(groups),
                                             "ParallelismPerKPU": 1,
                                             "AutoScalingEnabled": False}},
            # Updates and restarts restore from snapshots: state survives an upgrade.
            "ApplicationSnapshotConfiguration": {"SnapshotsEnabled": True}},
    }
    if log_stream_arn:
        request["CloudWatchLoggingOptions"] = [{"LogStreamARN": log_stream_arn}]
    return request


def restore_configuration(restore: str) -> dict:
    """`latest`, `none`, or a snapshot name."""
    if restore == "latest":
        return {"ApplicationRestoreType": "RESTORE_FROM_LATEST_SNAPSHOT"}
    if restore == "none":
        return {"ApplicationRestoreType": "SKIP_RESTORE_FROM_SNAPSHOT"}
    return {"ApplicationRestoreType": "RESTORE_FROM_CUSTOM_SNAPSHOT", "SnapshotName": restore}


def run_configuration(restore: str, allow_non_restored_state: bool) -> dict:
    # Always sent: the service resets AllowNonRestoredState to false when it is left out.
    return {"ApplicationRestoreConfiguration": restore_configuration(restore),
            "FlinkRunConfiguration": {"AllowNonRestoredState": allow_non_restored_state}}


def update_request(name: str, version_id: int, bucket: str, key: str, object_version,
                   groups: list, restore: str = "latest",
                   allow_non_restored_state: bool = False) -> dict:
    code = {"BucketARNUpdate": f"arn:aws:s3:::{bucket}", "FileKeyUpdate": key}
    if object_version:
        code["ObjectVersionUpdate"] = object_version
    return {
        "ApplicationName": name,
        # The update fails if someone else changed the application since we looked.
        "CurrentApplicationVersionId": version_id,
        "ApplicationConfigurationUpdate": {
            "ApplicationCodeConfigurationUpdate": {
                "CodeContentTypeUpdate": "ZIPFILE",
                "CodeContentUpdate": {"S3ContentLocationUpdate": code}},
            "EnvironmentPropertyUpdates": {"PropertyGroups": groups},
            "FlinkApplicationConfigurationUpdate": {
                "ParallelismConfigurationUpdate": {"ConfigurationTypeUpdate": "CUSTOM",
                                                   "ParallelismUpdate": _parallelism(groups),
                                                   "AutoScalingEnabledUpdate": False}}},
        # A running application is snapshotted by the service, then restarted from it.
        "RunConfigurationUpdate": run_configuration(restore, allow_non_restored_state),
    }


def describe(kda, name: str) -> dict:
    return kda.describe_application(ApplicationName=name)["ApplicationDetail"]


def exists(kda, name: str) -> bool:
    request = {}
    while True:
        page = kda.list_applications(**request)
        if any(a["ApplicationName"] == name for a in page.get("ApplicationSummaries", ())):
            return True
        if not page.get("NextToken"):
            return False
        request["NextToken"] = page["NextToken"]


def create(kda, s3, args) -> dict:
    job_groups = read_properties(args.properties or DEFAULT_PROPERTIES)
    # --properties may hold an io group, as main.py --properties takes it: --io's keys go over it.
    io_values = {**(_io_group(job_groups) or {}), **(args.io or {})}
    if not io_values:
        raise DeployError(f"no {managed.IO_GROUP!r} property group: pass --io, or give one in "
                          f"--properties")
    groups = property_groups(job_groups, io_values, jarfile_in(args.zip))
    check_jar(args.zip, groups)
    if exists(kda, args.name):   # refused before the upload, which could replace its code
        raise DeployError(f"application {args.name} exists: deploy a new release with update")
    key = code_key(args.zip, args.key)
    check_key(s3, args.bucket, key, bool(args.key))
    version = upload(s3, args.zip, args.bucket, key)
    return kda.create_application(**create_request(args.name, args.role, args.bucket, key,
                                                   version, groups, args.log_stream_arn))


def update(kda, s3, args) -> dict:
    detail = describe(kda, args.name)
    current = _current_groups(detail)
    job_groups = read_properties(args.properties) if args.properties else current
    # An io group in --properties replaces the application's, as its other groups do; --io's
    # keys go over either.
    given = _io_group(job_groups)
    io_values = {**(_io_group(current) or {} if given is None else given), **(args.io or {})}
    if not io_values:
        raise DeployError(f"application {args.name} has no {managed.IO_GROUP!r} property group: "
                          f"pass --io")
    groups = property_groups(job_groups, io_values, jarfile_in(args.zip))
    check_jar(args.zip, groups)
    key = code_key(args.zip, args.key)
    check_key(s3, args.bucket, key, bool(args.key))
    version = upload(s3, args.zip, args.bucket, key)
    return kda.update_application(**update_request(
        args.name, detail["ApplicationVersionId"], args.bucket, key, version, groups,
        args.restore, args.allow_non_restored_state))


def _current_groups(detail: dict) -> list:
    """The application's property groups, in application_properties.json's shape."""
    return [{"PropertyGroupId": g["PropertyGroupId"], "PropertyMap": g["PropertyMap"]}
            for g in (detail.get("ApplicationConfigurationDescription", {})
                      .get("EnvironmentPropertyDescriptions", {})
                      .get("PropertyGroupDescriptions", []))]


def _io_group(groups: list):
    """The io group's values in `groups`, or None."""
    return next((g["PropertyMap"] for g in groups if g["PropertyGroupId"] == managed.IO_GROUP),
                None)


def rollback(kda, args) -> dict:
    detail = describe(kda, args.name)
    return kda.rollback_application(ApplicationName=args.name,
                                    CurrentApplicationVersionId=detail["ApplicationVersionId"])


def start(kda, args) -> dict:
    return kda.start_application(ApplicationName=args.name, RunConfiguration=run_configuration(
        args.restore, args.allow_non_restored_state))


def stop(kda, args) -> dict:
    # Without force the service takes a snapshot first (SnapshotsEnabled).
    return kda.stop_application(ApplicationName=args.name, Force=args.force)


def snapshot(kda, args) -> dict:
    return kda.create_application_snapshot(ApplicationName=args.name,
                                           SnapshotName=args.snapshot)


SNAPSHOTS_PAGE = 50   # ListApplicationSnapshots' largest Limit


def status(kda, args) -> dict:
    """The application's status and version, and all its snapshots, newest first (the service
    answers in pages, in an order of its own)."""
    detail = describe(kda, args.name)
    pages = kda.get_paginator("list_application_snapshots").paginate(
        ApplicationName=args.name, PaginationConfig={"PageSize": SNAPSHOTS_PAGE})
    snapshots = [s for page in pages for s in page.get("SnapshotSummaries", [])]
    # The service's model makes the time optional: one without it goes last.
    snapshots.sort(key=lambda s: (s.get("SnapshotCreationTimestamp") is not None,
                                  s.get("SnapshotCreationTimestamp")), reverse=True)
    return {"ApplicationStatus": detail["ApplicationStatus"],
            "ApplicationVersionId": detail["ApplicationVersionId"],
            "RuntimeEnvironment": detail["RuntimeEnvironment"],
            "Snapshots": [{"SnapshotName": s["SnapshotName"], "SnapshotStatus": s["SnapshotStatus"],
                           "ApplicationVersionId": s["ApplicationVersionId"],
                           "SnapshotCreationTimestamp": s.get("SnapshotCreationTimestamp")}
                          for s in snapshots]}


def _io_arg(text: str) -> dict:
    values = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=value[,key=value...], got {quoted(item)}")
        values[key.strip()] = value.strip()
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/managed-flink",
                                description="Amazon Managed Service for Apache Flink: package "
                                            "and deploy flowdredge (docs/managed-flink.md)")
    def common(sp, default):
        # Before the command or after it; after it, absent, they leave the first one's value.
        sp.add_argument("--region", default=default,
                        help="AWS region (default: the AWS configuration's)")
        sp.add_argument("--endpoint-url", default=default,
                        help="another endpoint for both APIs (a local emulator)")

    common(p, None)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("package", help="build the application zip (operate.package; --help there)",
                   add_help=False)

    def named(name, help_text):
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("--name", required=True, help="application name")
        common(sp, argparse.SUPPRESS)
        return sp

    def code(sp):
        sp.add_argument("--zip", default=package.DEFAULT_OUTPUT, help="the application zip")
        sp.add_argument("--bucket", required=True, help="S3 bucket for the zip")
        sp.add_argument("--key", help=f"S3 key for the zip, in a versioned bucket (default: "
                                      f"{KEY_PREFIX}<first 16 hex digits of the zip's "
                                      f"sha256>.zip)")
        sp.add_argument("--properties",
                        help="the job's property groups (application_properties.json shape, "
                             "or a YAML config; create: default "
                             "flink-conf/application_properties.json; update: default the "
                             "application's own); an io group in it is deployed, --io's keys "
                             "over it")

    allow_help = ("restore a snapshot holding state of operators the job no longer has "
                  "(an output turned off; docs/operations.md, upgrades), dropping that state")

    io_help = ("the io group: flows=URL,metadata=URL,output=URL"
               "[,flows_layout=aws|staged][,follow_seconds=N]")
    c = named("create", "upload the zip and create the application (not started)")
    code(c)
    c.add_argument("--role", required=True, help="service execution role ARN")
    c.add_argument("--io", type=_io_arg,
                   help=io_help + " (needed unless --properties holds an io group, whose "
                                  "keys these replace)")
    c.add_argument("--log-stream-arn", help="CloudWatch Logs stream for the application's logs")
    u = named("update", "upload the zip and update the application; a running application is "
                        "snapshotted and restarted from the snapshot")
    code(u)
    u.add_argument("--io", type=_io_arg,
                   help=io_help + " (the keys given replace those of the application's io "
                                  "group, or of --properties' if it has one; the others stay)")
    u.add_argument("--restore", default="latest",
                   help="latest (default), none, or a snapshot name")
    u.add_argument("--allow-non-restored-state", action="store_true", help=allow_help)
    named("rollback", "back to the previous application version (its code, config, state)")
    s = named("start", "start the application")
    s.add_argument("--restore", default="latest", help="latest (default), none, or a snapshot name")
    s.add_argument("--allow-non-restored-state", action="store_true", help=allow_help)
    t = named("stop", "stop the application (snapshot first, unless --force)")
    t.add_argument("--force", action="store_true")
    n = named("snapshot", "take a snapshot of the running application")
    n.add_argument("--snapshot", required=True, help="snapshot name")
    named("status", "application status, version and snapshots (newest first)")
    return p


def main(argv=None, session=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["package"]:
        return package.main(argv[1:])
    p = parser()
    args, rest = p.parse_known_args(argv)
    if args.command == "package":   # after --region or --endpoint-url, which it does not use
        return package.main(rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    actions = {"create": lambda: create(kda, s3, args), "update": lambda: update(kda, s3, args),
               "rollback": lambda: rollback(kda, args), "start": lambda: start(kda, args),
               "stop": lambda: stop(kda, args), "snapshot": lambda: snapshot(kda, args),
               "status": lambda: status(kda, args)}
    try:
        # In the try: no region (NoRegionError) is one line, not a traceback (a review).
        session = session or boto3.session.Session(region_name=args.region)
        kda = session.client("kinesisanalyticsv2", endpoint_url=args.endpoint_url)
        s3 = session.client("s3", endpoint_url=args.endpoint_url)
        result = actions[args.command]()
    except (ConfigError, DeployError, OSError, zipfile.BadZipFile, BotoCoreError,
            ClientError) as err:
        print(f"flowdredge: error: {err}", file=sys.stderr)
        return 2
    result.pop("ResponseMetadata", None)
    json.dump(result, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
