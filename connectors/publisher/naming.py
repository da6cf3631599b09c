"""Owner names from resource names: the Netflix "Frigga" rule, or a configured pattern. Pure.

Frigga: a name is `app[-stack[-detail...]][-vNNN]`. A trailing push version (`-v` and 3 to 6
digits) marks an Auto Scaling group of a cluster; without it the name is the cluster itself.
The app is the cluster up to its first hyphen.

    api-prod-v012         -> app "api", cluster "api-prod"
    api-prod-canary-v003  -> app "api", cluster "api-prod-canary"
    api                   -> app "api", cluster "api"
    api--canary-v001      -> app "api", cluster "api--canary"   (empty stack)

A `pattern` rule is a regular expression matched against the whole name, with the named groups
`app` and `cluster` (either may be left out: a missing cluster is the name without its push
version, a missing app is the cluster). A name that does not match is its own app and cluster.
"""
import re
from dataclasses import dataclass

FRIGGA = "frigga"
PATTERN = "pattern"
RULES = (FRIGGA, PATTERN)

_PUSH = re.compile(r"^(?P<cluster>.+?)-v\d{3,6}$")


@dataclass(frozen=True)
class Names:
    app: str
    cluster: str


class NameRule:
    def __init__(self, rule: str = FRIGGA, pattern: str = None):
        if rule not in RULES:
            raise ValueError(f"naming rule must be one of {list(RULES)}, got {rule!r}")
        self.rule = rule
        self.pattern = None
        if rule == PATTERN:
            if not pattern:
                raise ValueError("naming.pattern is required when naming.rule is 'pattern'")
            try:
                self.pattern = re.compile(pattern)
            except re.error as err:
                raise ValueError(f"naming.pattern is not a valid regular expression: {err}") from None
            if not {"app", "cluster"} & set(self.pattern.groupindex):
                raise ValueError("naming.pattern must define a named group 'app' or 'cluster', "
                                 "e.g. (?P<app>[^-]+)")

    def parse(self, name: str) -> Names:
        cluster = _without_push(name)
        if self.pattern is not None:
            match = self.pattern.fullmatch(name)
            if not match:
                return Names(name, name)
            groups = match.groupdict()
            cluster = groups.get("cluster") or cluster
            return Names(groups.get("app") or cluster, cluster)
        return Names(cluster.split("-", 1)[0] or cluster, cluster)


def _without_push(name: str) -> str:
    match = _PUSH.match(name)
    return match.group("cluster") if match else name
