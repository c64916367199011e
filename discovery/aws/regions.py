"""The AWS region names botocore knows: its bundled endpoint data (`endpoints.json`), every
partition (aws, aws-cn, aws-us-gov, the ISO partitions).

Read through botocore's own loader, the same data boto3's `Session.get_available_regions` and
botocore's endpoint resolver use, so the config check agrees with what the clients can reach.
"""

from __future__ import annotations

import functools

from botocore.loaders import create_loader

__all__ = ["known_regions"]


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region of every partition in botocore's `endpoints.json`."""
    data = create_loader().load_data("endpoints")
    return frozenset(
        str(region)
        for partition in data.get("partitions", ())
        for region in partition.get("regions", {})
    )
