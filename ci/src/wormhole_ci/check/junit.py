"""JUnit XML for a run report, so CI systems can show one test case per task."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from wormhole_ci.results import RunReport, Status

# Terminal colour codes (jest colours its failure diff) and other characters XML 1.0 forbids:
# left in, they make the whole report unreadable to every JUnit consumer.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` without terminal escape sequences and characters XML 1.0 cannot hold."""
    return _NOT_XML.sub("", _ANSI.sub("", text))


def junit_xml(
    report: RunReport, suite_prefix: str = "wormhole-ci", notes: Sequence[str] = ()
) -> str:
    """A `<testsuites>` document: a suite per service, a case per task.

    A plan note (`<service>: …`) becomes a `note` property of that service's suite.
    """
    root = ET.Element("testsuites", name=suite_prefix, time=f"{report.wall_time:.3f}")
    for service in report.services():
        results = [r for r in report.results if r.service == service]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{suite_prefix}.{service}",
            tests=str(len(results)),
            failures=str(sum(r.status is Status.FAILED for r in results)),
            skipped=str(sum(r.status is Status.BLOCKED for r in results)),
            errors="0",
            time=f"{sum(r.duration for r in results):.3f}",
        )
        own = [n for n in notes if n.startswith(f"{service}: ")]
        if own:
            properties = ET.SubElement(suite, "properties")
            for note in own:
                ET.SubElement(properties, "property", name="note", value=note)
        for result in results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=service,
                name=result.task,
                time=f"{result.duration:.3f}",
            )
            if result.status is Status.FAILED:
                failure = ET.SubElement(
                    case, "failure", message=f"{service}/{result.task} exited {result.exit_code}"
                )
                failure.text = xml_text(result.tail)
            elif result.status is Status.BLOCKED:
                ET.SubElement(case, "skipped", message=xml_text(result.tail))
            if result.cached:
                ET.SubElement(case, "system-out").text = f"cached: {xml_text(result.tail)}"
            elif result.log:
                ET.SubElement(case, "system-out").text = f"log: {result.log}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(report: RunReport, path: Path, notes: Sequence[str] = ()) -> None:
    """Write the report's JUnit XML to `path`, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(report, notes=notes), encoding="utf-8")
