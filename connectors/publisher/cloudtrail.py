"""Near-real-time changes from CloudTrail / EventBridge events, between polls. Pure.

Accepted lines (JSON Lines, one of these per line):
- an EventBridge event "AWS API Call via CloudTrail" (the CloudTrail record in `detail`);
- an EventBridge "EC2 Instance State-change Notification";
- a CloudTrail record, or a CloudTrail log file object {"Records": [...]} (a bad record of it is
  passed over alone).

Handled calls: RunInstances, TerminateInstances, CreateNetworkInterface, DeleteNetworkInterface,
AttachNetworkInterface, DetachNetworkInterface (failed calls, with an errorCode, are ignored),
and instance states shutting-down / terminated. Each becomes an InventoryChange, applied to the
scope's inventory from the last poll (`apply_change`); the reconciliation turns the new
inventory into ASSIGN / UNASSIGN events at the event's time for the addresses it dates
(`dated_addresses`), releasing the others it changes as a poll would. A change that needs something the
inventory does not know (attaching an interface or instance not seen yet) is left to the next
poll. Everything else (secondary-address calls, load balancers, Lambda) is left to the polls.
"""
import copy
import json
from dataclasses import dataclass, field, replace
from datetime import datetime

from flowdredge.connectors.publisher.derive import (ASG_TAG, interface_addresses,
                                                    primary_address, tag_dict)
from flowdredge.connectors.publisher.model import Inventory, Scope
from flowdredge.schemas.settings import quoted

CLOUDTRAIL_DETAIL = "AWS API Call via CloudTrail"
STATE_CHANGE_DETAIL = "EC2 Instance State-change Notification"
TERMINATED = "terminated"
GONE_STATES = ("shutting-down", TERMINATED)


class EventError(ValueError):
    pass


# Characters per JSON value ('{', '[' or ',' opens one) a line holds at least. Real records,
# compact, hold 17 to 28 (RunInstances 17 to 19, 1,000 addresses assigned 17,
# CreateNetworkInterface 24); 11.7 if every instance and interface had the 50 tags AWS allows,
# each a letter with no value. Decoded, a value takes tens of bytes however short its text: a
# real line takes 5 to 7.4 times its size, one of `[],` 21 times (1.35 GB for 62 MB); one of
# six characters a value, at most about 10 times (`"abc",`).
EVENT_CHARS_PER_VALUE = 6
# Lines up to this are not counted: decoded, one takes at most about 21 MB, and a tag value
# may hold commas and brackets that the count takes for values (an EventBridge event is at
# most 256 KB).
EVENT_COUNTED_CHARS = 1 << 20


@dataclass(frozen=True)
class InventoryChange:
    scope: Scope
    at_ms: int
    name: str                                            # the API call or instance state
    interfaces_added: tuple = ()                         # DescribeNetworkInterfaces-shaped
    interfaces_removed: tuple = ()                       # interface ids
    instances_added: dict = field(default_factory=dict)  # instance id -> tags
    instances_gone: tuple = ()                           # instance ids
    attach: tuple = None   # (interface id, instance id, attachment id, device index)
    detach: str = None                                   # attachment id


def parse_line(line: str) -> list:
    """The inventory changes one line describes ([] for events that change no address); in a
    CloudTrail log object, a record that cannot be read is its EventError in the list, and an
    object none of whose records can be read is one EventError."""
    if len(line) > EVENT_COUNTED_CHARS:
        values = line.count("{") + line.count("[") + line.count(",")
        if values > len(line) // EVENT_CHARS_PER_VALUE:
            # Refused before it is decoded: decoding is what would take the memory.
            raise EventError(f"{values:,} JSON values ('{{', '[' or ',') in {len(line):,} "
                             f"characters, more than real events hold (one in "
                             f"{EVENT_CHARS_PER_VALUE})")
    try:
        doc = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EventError("not JSON") from None
    except ValueError:
        # An integer of more digits than int() reads refused the whole text, said "not JSON":
        # a log object's every record with it. CloudTrail writes none: its record is refused.
        try:
            doc = json.loads(line, parse_int=_integer)
        except ValueError:
            raise EventError("not JSON") from None
        if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
            doc["Records"] = [_TOO_LONG if _holds(record, _TOO_LONG) else record
                              for record in doc["Records"]]
        else:
            raise EventError(_TOO_LONG_TEXT) from None
    if not isinstance(doc, dict):
        raise EventError("not a JSON object")
    if "Records" in doc:
        records = doc["Records"]
        # Iterated, a string's characters or an object's keys were each a bad record counted.
        if not isinstance(records, list):
            raise EventError("Records is not a list")
        read = [_log_record(record) for record in records]
        # An object none of whose records reads is not the CloudTrail log object it looks like
        # (as one whose Records are no list): one unreadable line, not a count per record.
        if read and all(isinstance(r, EventError) for r in read):
            raise EventError(f"none of its {len(read):,} record(s) readable as CloudTrail's "
                             f"(the first: {read[0]})")
        return [c for r in read for c in ([r] if isinstance(r, EventError) else r)]
    detail_type = doc.get("detail-type")
    if detail_type == CLOUDTRAIL_DETAIL:
        record = dict(doc.get("detail") or {})
        record.setdefault("recipientAccountId", doc.get("account"))
        record.setdefault("awsRegion", doc.get("region"))
        record.setdefault("eventTime", doc.get("time"))
        return _from_record(record)
    if detail_type == STATE_CHANGE_DETAIL:
        detail = doc.get("detail") or {}
        if detail.get("state") not in GONE_STATES:
            return []
        return [InventoryChange(_scope(doc.get("account"), doc.get("region")), _ms(doc.get("time")),
                                detail["state"], instances_gone=(detail["instance-id"],))]
    if "eventName" in doc:
        return _from_record(doc)
    if detail_type is not None:
        return []
    raise EventError("neither an EventBridge event nor a CloudTrail record")


_TOO_LONG_TEXT = "an integer of more than 4,300 digits"
# What parse_line reads such an integer as, and a log object's record holding one.
_TOO_LONG = object()


def _integer(digits: str):
    try:
        return int(digits)
    except ValueError:
        return _TOO_LONG


def _holds(value, marker) -> bool:
    """Whether `value` or a value inside it is `marker` (a loop: json.loads reads deeper
    nesting than a recursion would walk)."""
    stack = [value]
    while stack:
        value = stack.pop()
        if value is marker:
            return True
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _log_record(record):
    """The changes of a CloudTrail log object's record, or its EventError: a bad record is
    passed over alone, the object's others read."""
    if record is _TOO_LONG:
        return EventError(f"a record holding {_TOO_LONG_TEXT}")
    if not isinstance(record, dict):
        return EventError("a record that is not a JSON object")
    try:
        return _from_record(record)
    except EventError as err:
        return err


def _from_record(record: dict) -> list:
    if record.get("errorCode"):
        return []
    name = record.get("eventName")
    request = record.get("requestParameters") or {}
    response = record.get("responseElements") or {}
    base = dict(scope=None, at_ms=0, name=name)
    try:
        if name == "RunInstances":
            instances, interfaces = {}, []
            for item in _items(response.get("instancesSet")):
                zone = (item.get("placement") or {}).get("availabilityZone")
                instances[item["instanceId"]] = tag_dict(
                    {"Key": t["key"], "Value": t.get("value", "")} for t in _items(item.get("tagSet")))
                interfaces += [_interface(n, zone, item["instanceId"])
                               for n in _items(item.get("networkInterfaceSet"))]
            change = InventoryChange(**base, instances_added=instances,
                                     interfaces_added=tuple(interfaces))
        elif name == "TerminateInstances":
            change = InventoryChange(**base, instances_gone=tuple(
                i["instanceId"] for i in _items(request.get("instancesSet"))))
        elif name == "CreateNetworkInterface":
            change = InventoryChange(**base, interfaces_added=(
                _interface(response["networkInterface"]),))
        elif name == "DeleteNetworkInterface":
            change = InventoryChange(**base, interfaces_removed=(request["networkInterfaceId"],))
        elif name == "AttachNetworkInterface":
            change = InventoryChange(**base, attach=(request["networkInterfaceId"],
                                                     request["instanceId"],
                                                     response.get("attachmentId"),
                                                     request.get("deviceIndex")))
        elif name == "DetachNetworkInterface":
            change = InventoryChange(**base, detach=request["attachmentId"])
        else:
            return []
        account = (record.get("recipientAccountId")
                   or (record.get("userIdentity") or {}).get("accountId"))
    except (KeyError, TypeError) as err:
        raise EventError(f"{name}: missing {err}") from None
    except AttributeError:   # a string, say, where CloudTrail writes an object
        raise EventError(f"{name}: a part of it is not a JSON object") from None
    return [replace(change, scope=_scope(account, record.get("awsRegion")),
                    at_ms=_ms(record.get("eventTime")))]


def _items(value) -> list:
    """CloudTrail writes lists as {"items": [...]}, {"item": [...]} or a plain list."""
    if isinstance(value, dict):
        value = value.get("items", value.get("item", []))
    return value if isinstance(value, list) else []


def _interface(item: dict, zone: str = None, instance_id: str = None) -> dict:
    private = [{"PrivateIpAddress": p["privateIpAddress"], "Primary": bool(p.get("primary")),
                **_association(p)}
               for p in _items(item.get("privateIpAddressesSet")) if p.get("privateIpAddress")]
    if not private and item.get("privateIpAddress"):
        private = [{"PrivateIpAddress": item["privateIpAddress"], "Primary": True, **_association(item)}]
    eni = {"NetworkInterfaceId": item["networkInterfaceId"],
           "AvailabilityZone": item.get("availabilityZone") or zone,
           "Description": item.get("description") or "",
           "VpcId": item.get("vpcId"),
           "InterfaceType": item.get("interfaceType") or "interface",
           "TagSet": [{"Key": t["key"], "Value": t.get("value", "")} for t in _items(item.get("tagSet"))],
           "PrivateIpAddresses": private,
           "Ipv6Addresses": [{"Ipv6Address": a["ipv6Address"]}
                             for a in _items(item.get("ipv6AddressesSet")) if a.get("ipv6Address")]}
    if instance_id:
        attachment = item.get("attachment") or {}
        eni["Attachment"] = {"InstanceId": instance_id,
                             "AttachmentId": attachment.get("attachmentId"),
                             "DeviceIndex": attachment.get("deviceIndex"),
                             "DeleteOnTermination": attachment.get("deleteOnTermination")}
    return eni


def _association(item: dict) -> dict:
    public = (item.get("association") or {}).get("publicIp")
    return {"Association": {"PublicIp": public}} if public else {}


def _scope(account, region) -> Scope:
    if not account or not region:
        raise EventError("the event names no account or region")
    return Scope(str(account), str(region))


def _ms(when) -> int:
    if not isinstance(when, str):
        raise EventError("the event has no time")
    try:
        at = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"bad event time {quoted(when)}") from None
    # AWS writes UTC, ending in Z. Without a zone the time would be read in the host's, hours
    # off, an owner dated wrongly until the next poll, which sees the change anyway.
    if at.tzinfo is None:
        raise EventError(f"event time {quoted(when)} names no time zone (AWS ends it in Z)")
    return int(at.timestamp() * 1000)


def apply_change(inventory: Inventory, change: InventoryChange):
    """The inventory after the change, or None when it refers to what the inventory does not
    know (the next poll will see it)."""
    interfaces = {e["NetworkInterfaceId"]: copy.deepcopy(e) for e in inventory.interfaces}
    instance_tags = dict(inventory.instance_tags)
    asg_of_instance = dict(inventory.asg_of_instance)
    # A termination asked for (TerminateInstances, shutting-down) leaves the instance its
    # interfaces, and its flows, until it is terminated: only then are those it keeps detached
    # (before, their own owner's from the call, the instance's flows while it shut down). Those
    # deleted with it go at once: nobody's early rather than the instance's late.
    terminated = change.name == TERMINATED
    for instance_id in change.instances_gone:
        if terminated:
            instance_tags.pop(instance_id, None)
        for eni_id, eni in list(interfaces.items()):
            attachment = eni.get("Attachment") or {}
            if attachment.get("InstanceId") != instance_id:
                continue
            delete = attachment.get("DeleteOnTermination")
            if delete is None:   # AWS deletes the primary interface with its instance
                delete = attachment.get("DeviceIndex") in (0, None)
            if delete:
                del interfaces[eni_id]
            elif terminated:
                eni.pop("Attachment")
    for eni_id in change.interfaces_removed:
        interfaces.pop(eni_id, None)
    # An instance or interface the inventory knows was seen at or after the event that made it
    # (AWS never gives an id again), or is an existing interface the launch attached (seen
    # before it: its attachment waits for the poll): what was seen stays. Put back as the event
    # made them, an instance lost the tags it was given after its launch, which a read had seen,
    # and an interface (the event given twice) its attachment (a review).
    for instance_id, tags in change.instances_added.items():
        if instance_id in instance_tags:
            continue
        instance_tags[instance_id] = tags
        if tags.get(ASG_TAG):
            asg_of_instance[instance_id] = tags[ASG_TAG]
    for eni in change.interfaces_added:
        interfaces.setdefault(eni["NetworkInterfaceId"], copy.deepcopy(eni))
    if change.attach:
        eni_id, instance_id, attachment_id, device_index = change.attach
        if eni_id not in interfaces or instance_id not in instance_tags:
            return None
        # The device index tells an EKS node's first interface from those the VPC CNI adds.
        interfaces[eni_id]["Attachment"] = {"InstanceId": instance_id, "AttachmentId": attachment_id,
                                            "DeviceIndex": device_index,
                                            "DeleteOnTermination": False}
    if change.detach:
        attached = [e for e in interfaces.values()
                    if (e.get("Attachment") or {}).get("AttachmentId") == change.detach]
        if not attached:
            return None
        attached[0].pop("Attachment")
    return replace(inventory, interfaces=list(interfaces.values()), instance_tags=instance_tags,
                   asg_of_instance=asg_of_instance)


def dated_addresses(inventory: Inventory, changed: Inventory, change: InventoryChange) -> set:
    """The addresses whose holders `change` dates, in the inventory before it and after: those of
    the interfaces it describes (which it made with them), and each interface's primary private
    address (which never leaves it). The others an interface held at the last poll (secondary
    addresses, Elastic and public IPv4, IPv6) may have left it since, by calls no event handles
    (AssignPrivateIpAddresses, AssociateAddress): an event that moved them with their interface
    gave them to its old owner until the event and to its new one after, where another
    interface held them (a review)."""
    dated = {address for eni in change.interfaces_added
             for address in interface_addresses(eni, public_ipv4=True)}
    dated.update(primary_address(eni) for inv in (inventory, changed) for eni in inv.interfaces)
    dated.discard(None)
    return dated
