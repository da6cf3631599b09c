"""Deploying the application zip (operate.package) to Amazon Managed Service for Apache Flink with
boto3 `kinesisanalyticsv2`: create, update (restoring from the snapshot the service takes),
rollback, start, stop, snapshot, status. Pure Python, no pyflink.

    scripts/managed-flink create --name flowdredge --role ARN --bucket B --io flows=s3://...
    scripts/managed-flink update --name flowdredge --bucket B
    scripts/managed-flink rollback --name flowdredge

docs/managed-flink.md explains each step and the IAM permissions.
"""
import argparse
import json
import os
import sys
import tempfile
import zipfile

from flowdredge.job import managed
from flowdredge.job.config import ConfigError
from flowdredge.operate import package

RUNTIME = "FLINK-2_2"
DEFAULT_PROPERTIES = os.path.join(package.ROOT, "flink-conf", "application_properties.json")
DEFAULT_KEY = "flowdredge/flowdredge-managed-flink.zip"


class DeployError(RuntimeError):
    pass


def jarfile_in(zip_path: str):
    """The connector jar the zip carries (its BUILD-INFO.json says), or None."""
    with zipfile.ZipFile(zip_path) as zf:
        if "BUILD-INFO.json" not in zf.namelist():
            raise DeployError(f"{zip_path} was not built by scripts/managed-flink package")
        return json.loads(zf.read("BUILD-INFO.json"))["jarfile"]


def property_groups(properties_path: str, io_values: dict, jarfile: str = None) -> list:
    """The job's groups from `properties_path`, the `io` group, and the service's run options
    (where main.py and the jar are in the zip); validated as the job will read them."""
    with open(properties_path, encoding="utf-8") as fh:
        groups = [g for g in json.load(fh)
                  if g.get("PropertyGroupId") not in (managed.IO_GROUP, managed.RUN_OPTIONS_GROUP)]
    groups.append({"PropertyGroupId": managed.IO_GROUP,
                   "PropertyMap": {k: str(v) for k, v in io_values.items()}})
    # The API refuses empty values; an absent key takes its default, which is the empty one.
    groups = [{"PropertyGroupId": g["PropertyGroupId"],
               "PropertyMap": {k: v for k, v in g["PropertyMap"].items() if v != ""}}
              for g in groups]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as tmp:
        json.dump(groups, tmp)
        tmp.flush()
        managed.load(tmp.name)
    run_options = {"python": "main.py"}
    if jarfile:
        run_options["jarfile"] = jarfile
    return groups + [{"PropertyGroupId": managed.RUN_OPTIONS_GROUP, "PropertyMap": run_options}]


def _parallelism(groups: list) -> int:
    job = next((g["PropertyMap"] for g in groups if g["PropertyGroupId"] == "job"), {})
    return int(job.get("parallelism", 1))


def upload(s3, zip_path: str, bucket: str, key: str):
    """Puts the zip in S3; returns its object version (None in an unversioned bucket)."""
    with open(zip_path, "rb") as fh:
        response = s3.put_object(Bucket=bucket, Key=key, Body=fh.read())
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


def update_request(name: str, version_id: int, bucket: str, key: str, object_version,
                   groups: list, restore: str = "latest") -> dict:
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
        "RunConfigurationUpdate": {"ApplicationRestoreConfiguration":
                                   restore_configuration(restore)},
    }


def describe(kda, name: str) -> dict:
    return kda.describe_application(ApplicationName=name)["ApplicationDetail"]


def create(kda, s3, args) -> dict:
    groups = property_groups(args.properties, args.io, jarfile_in(args.zip))
    version = upload(s3, args.zip, args.bucket, args.key)
    return kda.create_application(**create_request(args.name, args.role, args.bucket, args.key,
                                                   version, groups, args.log_stream_arn))


def update(kda, s3, args) -> dict:
    detail = describe(kda, args.name)
    io_values = args.io or _current_io(detail)
    groups = property_groups(args.properties, io_values, jarfile_in(args.zip))
    version = upload(s3, args.zip, args.bucket, args.key)
    return kda.update_application(**update_request(
        args.name, detail["ApplicationVersionId"], args.bucket, args.key, version, groups,
        args.restore))


def _current_io(detail: dict) -> dict:
    groups = (detail.get("ApplicationConfigurationDescription", {})
              .get("EnvironmentPropertyDescriptions", {}).get("PropertyGroupDescriptions", []))
    for group in groups:
        if group["PropertyGroupId"] == managed.IO_GROUP:
            return group["PropertyMap"]
    raise DeployError(f"application {detail['ApplicationName']} has no {managed.IO_GROUP!r} "
                      f"property group: pass --io")


def rollback(kda, args) -> dict:
    detail = describe(kda, args.name)
    return kda.rollback_application(ApplicationName=args.name,
                                    CurrentApplicationVersionId=detail["ApplicationVersionId"])


def start(kda, args) -> dict:
    return kda.start_application(ApplicationName=args.name, RunConfiguration={
        "ApplicationRestoreConfiguration": restore_configuration(args.restore)})


def stop(kda, args) -> dict:
    # Without force the service takes a snapshot first (SnapshotsEnabled).
    return kda.stop_application(ApplicationName=args.name, Force=args.force)


def snapshot(kda, args) -> dict:
    return kda.create_application_snapshot(ApplicationName=args.name,
                                           SnapshotName=args.snapshot)


def status(kda, args) -> dict:
    detail = describe(kda, args.name)
    snapshots = kda.list_application_snapshots(ApplicationName=args.name, Limit=10)
    return {"ApplicationStatus": detail["ApplicationStatus"],
            "ApplicationVersionId": detail["ApplicationVersionId"],
            "RuntimeEnvironment": detail["RuntimeEnvironment"],
            "Snapshots": [{"SnapshotName": s["SnapshotName"], "SnapshotStatus": s["SnapshotStatus"],
                           "ApplicationVersionId": s["ApplicationVersionId"]}
                          for s in snapshots.get("SnapshotSummaries", [])]}


def _io_arg(text: str) -> dict:
    values = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=value[,key=value...], got {item!r}")
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
        sp.add_argument("--key", default=DEFAULT_KEY, help="S3 key for the zip")
        sp.add_argument("--properties", default=DEFAULT_PROPERTIES,
                        help="the job's property groups (application_properties.json shape)")

    io_help = ("the io group: flows=URL,metadata=URL,output=URL"
               "[,flows_layout=aws|staged][,follow_seconds=N]")
    c = named("create", "upload the zip and create the application (not started)")
    code(c)
    c.add_argument("--role", required=True, help="service execution role ARN")
    c.add_argument("--io", type=_io_arg, required=True, help=io_help)
    c.add_argument("--log-stream-arn", help="CloudWatch Logs stream for the application's logs")
    u = named("update", "upload the zip and update the application; a running application is "
                        "snapshotted and restarted from the snapshot")
    code(u)
    u.add_argument("--io", type=_io_arg, help=io_help + " (default: unchanged)")
    u.add_argument("--restore", default="latest",
                   help="latest (default), none, or a snapshot name")
    named("rollback", "back to the previous application version (its code, config, state)")
    s = named("start", "start the application")
    s.add_argument("--restore", default="latest", help="latest (default), none, or a snapshot name")
    t = named("stop", "stop the application (snapshot first, unless --force)")
    t.add_argument("--force", action="store_true")
    n = named("snapshot", "take a snapshot of the running application")
    n.add_argument("--snapshot", required=True, help="snapshot name")
    named("status", "application status, version and latest snapshots")
    return p


def main(argv=None, session=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["package"]:
        return package.main(argv[1:])
    args = parser().parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    session = session or boto3.session.Session(region_name=args.region)
    kda = session.client("kinesisanalyticsv2", endpoint_url=args.endpoint_url)
    s3 = session.client("s3", endpoint_url=args.endpoint_url)
    actions = {"create": lambda: create(kda, s3, args), "update": lambda: update(kda, s3, args),
               "rollback": lambda: rollback(kda, args), "start": lambda: start(kda, args),
               "stop": lambda: stop(kda, args), "snapshot": lambda: snapshot(kda, args),
               "status": lambda: status(kda, args)}
    try:
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
