"""main.py at the root of the application zip (operate.package copies this file there): the
`python` run option of Amazon Managed Service for Apache Flink. Puts the zip's code folders
ahead of anything installed, then runs job.flink.managed."""
import glob
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
CODE_DIRS = [os.path.join(ROOT, "python"), os.path.join(ROOT, "vendor")]
sys.path[:0] = CODE_DIRS

from flowdredge.job.flink.managed import main  # noqa: E402 (needs the path above)

if __name__ == "__main__":
    jars = glob.glob(os.path.join(ROOT, "lib", "*.jar"))
    sys.exit(main(CODE_DIRS, jars[0] if jars else None))
