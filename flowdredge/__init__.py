"""flowdredge: VPC Flow Logs attributed to their owners at the time of the flow, on Flink.

Its layers are subpackages, flowdredge.schemas, .job, .connectors, .explore, .synthetic,
.operate, and the `flowdredge` command (flowdredge.cli). Installed (a wheel, the Managed Flink
zip) they are folders inside this package; in a checkout they are the folders beside this one
(job/, connectors/, ...: the layout the project promises), found through the path below. Only
this package's name goes into site-packages, so no generic top-level name (`job`) collides with
another distribution's."""
import os

_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isfile(os.path.join(_CHECKOUT, "pyproject.toml")) and \
        os.path.isfile(os.path.join(_CHECKOUT, "job", "__init__.py")):
    __path__.append(_CHECKOUT)
