"""Log lines: text and JSON, tagged with cycle and scope through asyncio tasks, scrubbed."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from discovery.output.logs import (
    REDACTED,
    JsonFormatter,
    Redactor,
    TextFormatter,
    configure_logging,
    cycle_context,
    scope_context,
)

SECRET = "xid-Unit-9QwErTy"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.daemon.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_json_lines_carry_cycle_and_scope_per_task(
    captured: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(JsonFormatter(Redactor()))

    async def scope(account: str, region: str) -> None:
        with scope_context(account=account, region=region):
            await asyncio.sleep(0)  # interleave the tasks
            logger.warning("scope line")

    async def cycle() -> None:
        with cycle_context("c1"):
            logger.info("cycle line")
            await asyncio.gather(scope("111", "us-east-1"), scope("222", "eu-west-1"))
        logger.info("after")

    asyncio.run(cycle())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0] == {
        "time": lines[0]["time"],
        "level": "info",
        "logger": "tests.daemon.logs",
        "message": "cycle line",
        "cycle_id": "c1",
    }
    assert lines[0]["time"].endswith("Z")
    scoped = sorted((line["account"], line["region"], line["cycle_id"]) for line in lines[1:3])
    assert scoped == [("111", "us-east-1", "c1"), ("222", "eu-west-1", "c1")]
    assert "cycle_id" not in lines[3] and "account" not in lines[3]


def test_text_lines_end_with_the_context(
    captured: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(TextFormatter(Redactor()))
    with cycle_context("abc"), scope_context(account="", region="us-east-1"):
        logger.warning("hello %s", "world")
    line = stream.getvalue().strip()
    assert line.endswith("WARNING tests.daemon.logs: hello world cycle=abc region=us-east-1")


@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter], ids=["text", "json"])
def test_secrets_are_scrubbed_from_messages_and_tracebacks(
    captured: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
    formatter: type[TextFormatter] | type[JsonFormatter],
) -> None:
    logger, stream, handler = captured
    redactor = Redactor()
    handler.setFormatter(formatter(redactor))
    redactor.add([SECRET, ""])  # an empty external id (none configured) is not a secret
    logger.error("assume role with external id %s failed", SECRET)
    try:
        raise ValueError(f"ExternalId={SECRET}")
    except ValueError:
        logger.exception("boom")
    out = stream.getvalue()
    assert SECRET not in out
    assert out.count(REDACTED) == 2
    assert "boom" in out and "Traceback" in out


def test_redactor_scrubs_documents_and_longest_secret_first() -> None:
    redactor = Redactor(["abcd", "abcdef"])
    assert redactor("x abcdef y abcd") == f"x {REDACTED} y {REDACTED}"
    doc = {"k": ["abcd", {"v": "abcdef"}], "n": 3, "b": None}
    assert redactor.scrub(doc) == {"k": [REDACTED, {"v": REDACTED}], "n": 3, "b": None}


def test_scrub_redacts_values_never_keys() -> None:
    # Issue 12 hole 11: keys are this service's own names (`status`, regions); a short external
    # id used to turn `"status"` into `"stat***"`.
    redactor = Redactor(["us", "abcdef"])
    doc = {"status": "ok", "us": "us", "us-east-1": {"abcdef": ["abcdef", "x us y"]}}
    assert redactor.scrub(doc) == {
        "status": "ok",
        "us": REDACTED,
        "us-east-1": {"abcdef": [REDACTED, f"x {REDACTED} y"]},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("us", REDACTED, id="alone"),
        pytest.param("ExternalId=us,", f"ExternalId={REDACTED},", id="after-equals"),
        pytest.param("id 'us' failed", f"id '{REDACTED}' failed", id="quoted"),
        pytest.param("(us)", f"({REDACTED})", id="parenthesised"),
        pytest.param("region=us-east-1", "region=us-east-1", id="region-name"),
        pytest.param("status", "status", id="inside-a-word"),
        pytest.param("bus us_1 xus 1us", "bus us_1 xus 1us", id="longer-tokens"),
        pytest.param('{"status": "us"}', f'{{"status": "{REDACTED}"}}', id="json-value"),
    ],
)
def test_a_short_secret_is_redacted_as_a_whole_token_only(text: str, expected: str) -> None:
    assert Redactor(["us"])(text) == expected


def test_a_secret_with_punctuation_at_its_ends_is_still_found() -> None:
    redactor = Redactor(["/ext=9/", "a.b"])
    assert redactor("x/ext=9/y a.b.c") == f"x{REDACTED}y {REDACTED}.c"


@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter], ids=["text", "json"])
def test_a_short_external_id_leaves_the_line_and_its_context_intact(
    captured: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
    formatter: type[TextFormatter] | type[JsonFormatter],
) -> None:
    logger, stream, handler = captured
    # Secrets that are also words of the line itself: a context key, the logger's last part.
    handler.setFormatter(formatter(Redactor(["us", "region", "logs"])))
    with cycle_context("c-us"), scope_context(account="111", region="us-east-1"):
        logger.warning("status of us-east-1: external id us region")
    out = stream.getvalue().strip()
    if formatter is TextFormatter:
        assert out.endswith(
            f"WARNING tests.daemon.logs: status of us-east-1: external id {REDACTED} {REDACTED}"
            " cycle=c-us account=111 region=us-east-1"
        ), out
    else:
        line = json.loads(out)
        assert line["message"] == f"status of us-east-1: external id {REDACTED} {REDACTED}"
        assert (line["logger"], line["cycle_id"], line["region"]) == (
            "tests.daemon.logs",
            "c-us",
            "us-east-1",
        )


def test_environment_secrets_only_when_long_enough() -> None:
    redactor = Redactor()
    redactor.add_environment(
        {"AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLETOKEN123"}
    )
    assert redactor("testing FwoGZXIvYXdzEXAMPLETOKEN123") == f"testing {REDACTED}"


def test_configure_logging_replaces_the_root_handler() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        stream = io.StringIO()
        redactor = configure_logging(level="info", log_format="json", stream=stream)
        redactor.add([SECRET])
        logging.getLogger("discovery.test").info("id %s", SECRET)
        logging.getLogger("botocore").info("per-request noise")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [line["message"] for line in lines] == [f"id {REDACTED}"]
        with pytest.raises(ValueError, match="log format"):
            configure_logging(level="info", log_format="xml", stream=stream)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)
